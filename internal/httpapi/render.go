package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
)

// decode reads a JSON body into v, strictly: unknown fields, trailing data
// and a body over the limit are errors.
func decode(r *http.Request, v any) error {
	// the common value is taken as it is: ParseMediaType allocates its
	// parameters' map for every call
	if ct := r.Header.Get("Content-Type"); ct != "" && ct != "application/json" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return Errorf(http.StatusUnsupportedMediaType, CodeInvalidArgument, "Content-Type must be application/json")
		}
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		if errors.Is(err, io.EOF) {
			return Invalid("request body is empty; want a JSON object")
		}
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return Invalid("request body is not valid JSON (at byte %d)", se.Offset)
		case errors.As(err, &te):
			return Invalid("field %q: want %s", te.Field, te.Type)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			return Invalid("unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
		}
		return Invalid("request body: %v", err)
	}
	if dec.More() {
		return Invalid("request body holds more than one JSON value")
	}
	if _, err := io.Copy(io.Discard, r.Body); err != nil {
		return err
	}
	return nil
}

// decodeOptional is decode that accepts an empty body.
func decodeOptional(r *http.Request, v any) error {
	if r.ContentLength == 0 {
		return nil
	}
	err := decode(r, v)
	var he *Error
	if errors.As(err, &he) && strings.HasPrefix(he.Message, "request body is empty") {
		return nil
	}
	return err
}

// Constant response header values, shared by every response instead of
// allocated per response. net/http only reads them; Set and Del replace
// or drop a slice, and Add copies one of length 1 before appending.
var (
	hdrJSON    = []string{"application/json"}
	hdrNoStore = []string{"no-store"}
	hdrNosniff = []string{"nosniff"}
)

// writeJSON renders v with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h["Content-Type"] = hdrJSON
	h["Cache-Control"] = hdrNoStore
	w.WriteHeader(status)
	if v == nil {
		return
	}
	enc := json.NewEncoder(w)
	if err := enc.Encode(v); err != nil {
		// The status is out; nothing more can be told to the client.
		_ = fmt.Errorf("httpapi: encode response: %w", err)
	}
}

type errorBody struct {
	Error errorObject `json:"error"`
}

type errorObject struct {
	Code      string         `json:"code"`
	Message   string         `json:"message"`
	RequestID string         `json:"request_id"`
	Details   map[string]any `json:"details,omitempty"`
}

// Stream is a handler's response body that is not JSON but the bytes of
// Body (a download), sent with Content-Type, Content-Length (Size) and
// Header after the request's audit entry is written. The edge always closes
// Body, whether it was sent or not.
type Stream struct {
	Body        io.ReadCloser
	Size        int64
	ContentType string
	Header      http.Header
}

// send writes s with status; a failure part way is the client's to notice
// (the length falls short).
func (s *Stream) send(w http.ResponseWriter, status int) {
	h := w.Header()
	for k, v := range s.Header {
		h[k] = v
	}
	h.Set("Content-Type", s.ContentType)
	h.Set("Content-Length", strconv.FormatInt(s.Size, 10))
	h["Cache-Control"] = hdrNoStore
	w.WriteHeader(status)
	io.CopyN(w, s.Body, s.Size)
}
