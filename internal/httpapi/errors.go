package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/keyward/keyward/internal/storage"
)

// Error codes of DESIGN.md's error vocabulary.
const (
	CodeInvalidArgument  = "invalid_argument"
	CodeUnauthenticated  = "unauthenticated"
	CodePermissionDenied = "permission_denied"
	CodeNotFound         = "not_found"
	CodeConflict         = "conflict"
	CodeTooLarge         = "too_large"
	CodeRateLimited      = "rate_limited"
	CodeSealed           = "sealed"
	CodeInternal         = "internal"
	CodeUnavailable      = "unavailable"
	CodeMethodNotAllowed = "method_not_allowed"
)

// Error is an error with its HTTP status and code. Message is shown to the
// client; it must never contain a secret value or a token.
type Error struct {
	Status  int
	Code    string
	Message string
	// Details are extra fields of the error object (e.g. "current_version").
	Details map[string]any
	// Err is the internal cause; it is logged, never sent.
	Err error
	// RetryAfter, when set, is sent as the Retry-After header (429, 503).
	RetryAfter time.Duration
	// WWWAuthenticate, when set, is sent as the WWW-Authenticate header (401).
	WWWAuthenticate string
	// Header holds extra response headers (RateLimit-* on a 429). Keys
	// must be canonical; a value here replaces one set above.
	Header http.Header
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf builds an Error with a formatted client message.
func Errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Invalid is a 400 invalid_argument.
func Invalid(format string, args ...any) *Error {
	return Errorf(http.StatusBadRequest, CodeInvalidArgument, format, args...)
}

// mapping translates a domain error to an HTTP error. Domain packages return
// sentinels; this table is the one place they meet HTTP.
type mapping struct {
	target  error
	status  int
	code    string
	message string // "" = use err.Error() (domain messages are written to be shown)
}

// ErrorMapper holds the sentinel table; the server extends it with each
// domain package's errors.
type ErrorMapper struct{ table []mapping }

// Map registers a domain sentinel. An empty message shows the error's own text.
func (m *ErrorMapper) Map(target error, status int, code, message string) {
	m.table = append(m.table, mapping{target, status, code, message})
}

// NewErrorMapper returns a mapper with the errors every package shares.
func NewErrorMapper() *ErrorMapper {
	m := &ErrorMapper{}
	m.Map(storage.ErrNotFound, http.StatusNotFound, CodeNotFound, "not found")
	m.Map(storage.ErrConflict, http.StatusConflict, CodeConflict, "conflict")
	m.Map(storage.ErrUnavailable, http.StatusServiceUnavailable, CodeUnavailable, "storage is unavailable")
	m.Map(context.DeadlineExceeded, http.StatusServiceUnavailable, CodeUnavailable, "the request timed out")
	return m
}

// Translate turns any error into an *Error for the client.
func (m *ErrorMapper) Translate(err error) *Error {
	var he *Error
	if errors.As(err, &he) {
		return he
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return &Error{Status: http.StatusRequestEntityTooLarge, Code: CodeTooLarge,
			Message: fmt.Sprintf("request body exceeds %d bytes", mbe.Limit), Err: err}
	}
	for _, mp := range m.table {
		if errors.Is(err, mp.target) {
			msg := mp.message
			if msg == "" {
				msg = err.Error()
			}
			return &Error{Status: mp.status, Code: mp.code, Message: msg, Err: err}
		}
	}
	return &Error{Status: http.StatusInternalServerError, Code: CodeInternal, Message: "internal error", Err: err}
}
