package cli

import (
	"bufio"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/keyward/keyward/client"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// maxInputLine bounds one line read from standard input (a password, a
// client secret, a JWT).
const maxInputLine = 64 << 10

// lineInput reads what a command asks for: without echo from the terminal
// when standard input is one, else line by line from standard input (so a
// script can pipe "password\ntotp-code\n").
type lineInput struct {
	env *Env
	br  *bufio.Reader
}

func newLineInput(env *Env) *lineInput {
	return &lineInput{env: env, br: bufio.NewReader(env.Stdin)}
}

// tty reports whether standard input is a terminal.
func (in *lineInput) tty() bool {
	f, ok := in.env.Stdin.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// errNoInput: standard input ended before the line a command needed.
var errNoInput = errors.New("standard input is empty")

// line reads one line from standard input, without its line ending.
func (in *lineInput) line() (string, error) {
	var sb strings.Builder
	for {
		b, err := in.br.ReadByte()
		if err == io.EOF {
			if sb.Len() == 0 {
				return "", errNoInput
			}
			break
		}
		if err != nil {
			return "", err
		}
		if b == '\n' {
			break
		}
		if sb.Len() >= maxInputLine {
			return "", fmt.Errorf("an input line is longer than %d bytes", maxInputLine)
		}
		sb.WriteByte(b)
	}
	return strings.TrimSuffix(sb.String(), "\r"), nil
}

// secret asks for a secret: a hidden prompt on a terminal, else a line of
// standard input. The value is never echoed.
func (in *lineInput) secret(prompt string) (string, error) {
	if f, ok := in.env.Stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(in.env.Stderr, prompt)
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(in.env.Stderr)
		return strings.TrimSuffix(string(b), "\r"), err
	}
	return in.line()
}

// newPassword reads a new password: asked twice on a terminal (unless
// fromStdin), else one line of standard input.
func (in *lineInput) newPassword(fromStdin bool) (string, error) {
	var pw string
	var err error
	if !fromStdin && in.tty() {
		pw, err = in.secret("New password: ")
		if err != nil {
			return "", err
		}
		again, err := in.secret("Repeat the password: ")
		if err != nil {
			return "", err
		}
		if subtle.ConstantTimeCompare([]byte(pw), []byte(again)) != 1 {
			return "", errors.New("the two passwords differ")
		}
	} else if pw, err = in.line(); err != nil {
		return "", fmt.Errorf("reading the password from standard input: %w", err)
	}
	if pw == "" {
		return "", errors.New("the password is empty")
	}
	return pw, nil
}

// saveToken writes the token file (mode 0600) atomically in its directory
// (mode 0700).
func saveToken(env *Env, tok string) (string, error) {
	path := tokenPath(env)
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("saving the token: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return "", fmt.Errorf("saving the token: %w", err)
	}
	if err := writePrivateFile(path, []byte(tok+"\n")); err != nil {
		return "", fmt.Errorf("saving the token: %w", err)
	}
	return path, nil
}

// writePrivateFile replaces path with data, readable and writable by the
// owner alone: a temporary file in the same directory (mode 0600), synced,
// then renamed over path, so a crash never leaves a partial file and a file
// others could read is not reused.
func writePrivateFile(path string, data []byte) error {
	return writePrivateFileFrom(path, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// writePrivateFileFrom is writePrivateFile with the content written by
// write, streamed; when write fails, path is left as it was.
func writePrivateFileFrom(path string, write func(io.Writer) error) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	err = f.Chmod(0o600) // CreateTemp's mode, whatever the platform
	if err == nil {
		err = write(f)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync() // make the rename durable where the platform allows
		d.Close()
	}
	return nil
}

// savedToken returns the token in the token file, "" when there is none.
func savedToken(env *Env) string {
	b, err := os.ReadFile(tokenPath(env))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// loginResult is what login prints with -o json. Token is set only with
// --no-save.
type loginResult struct {
	Principal string     `json:"principal"`
	Accessor  string     `json:"accessor"`
	Policies  []string   `json:"policies"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	Token     string     `json:"token,omitempty"`
	TokenFile string     `json:"token_file,omitempty"`
}

func newLoginCmd(env *Env) *cobra.Command {
	g := &globals{}
	var passwordStdin, service, jwtMode, noSave bool
	var totp, clientID, issuer, jwtFile string
	cmd := &cobra.Command{
		Use:   "login [USERNAME]",
		Short: "Log in and save a token for the other commands",
		Long: `Log in to keyward and save the token to $XDG_CONFIG_HOME/keyward/token
(~/.config/keyward/token), which every command uses when KEYWARD_TOKEN is
empty. The file is readable by you alone.

A user logs in with a password: asked for without echo on a terminal, else
read as one line from standard input (--password-stdin says so explicitly).
When the account has TOTP, the code is asked for (a second line of standard
input), or given with --totp.

A service account logs in with --service --client-id ID; the client secret
comes from $KEYWARD_CLIENT_SECRET or a line of standard input.

A workload logs in with a JWT from a trusted issuer: --jwt --issuer NAME, the
JWT read from --jwt-file, $KEYWARD_JWT or a line of standard input.

--no-save prints the token instead of saving it (-o json then includes it).`,
		Example: `  keyward login alice
  printf '%s\n' "$PASSWORD" | keyward login alice --password-stdin --totp 123456
  KEYWARD_CLIENT_SECRET=... keyward login --service --client-id kwsvc-0123456789abcdef
  keyward login --jwt --issuer github --jwt-file "$RUNNER_TEMP/id-token" --no-save -o json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, err := g.json()
			if err != nil {
				return err
			}
			if service && jwtMode {
				return Usagef("give at most one of --service and --jwt")
			}
			c, err := g.newClient(env)
			if err != nil {
				return err
			}
			in := newLineInput(env)
			ctx := cmd.Context()
			var it *client.IssuedToken
			switch {
			case service:
				if len(args) > 0 || issuer != "" || jwtFile != "" || totp != "" || passwordStdin {
					return Usagef("--service takes only --client-id (the secret comes from $KEYWARD_CLIENT_SECRET or standard input)")
				}
				if clientID == "" {
					return Usagef("--service needs --client-id ID")
				}
				secret := env.Getenv("KEYWARD_CLIENT_SECRET")
				if secret == "" {
					if secret, err = in.secret("Client secret: "); err != nil {
						return fmt.Errorf("reading the client secret: %w", err)
					}
				}
				if secret = strings.TrimSpace(secret); secret == "" {
					return errors.New("the client secret is empty")
				}
				it, err = c.ServiceLogin(ctx, clientID, secret)
			case jwtMode:
				if len(args) > 0 || clientID != "" || totp != "" || passwordStdin {
					return Usagef("--jwt takes only --issuer and --jwt-file")
				}
				if issuer == "" {
					return Usagef("--jwt needs --issuer NAME")
				}
				var jwt string
				switch {
				case jwtFile != "":
					b, err := os.ReadFile(jwtFile)
					if err != nil {
						return fmt.Errorf("reading the JWT: %w", err)
					}
					jwt = string(b)
				case env.Getenv("KEYWARD_JWT") != "":
					jwt = env.Getenv("KEYWARD_JWT")
				default:
					if jwt, err = in.secret("JWT: "); err != nil {
						return fmt.Errorf("reading the JWT: %w", err)
					}
				}
				if jwt = strings.TrimSpace(jwt); jwt == "" {
					return errors.New("the JWT is empty")
				}
				it, err = c.JWTLogin(ctx, issuer, jwt)
			default:
				if clientID != "" || issuer != "" || jwtFile != "" {
					return Usagef("--client-id needs --service; --issuer and --jwt-file need --jwt")
				}
				var user string
				switch {
				case len(args) == 1 && args[0] != "":
					user = args[0]
				case in.tty():
					fmt.Fprint(env.Stderr, "Username: ")
					if user, err = in.line(); err != nil {
						return fmt.Errorf("reading the user name: %w", err)
					}
					if user = strings.TrimSpace(user); user == "" {
						return Usagef("give the user name: keyward login USERNAME")
					}
				default:
					return Usagef("give the user name: keyward login USERNAME")
				}
				var pw string
				if passwordStdin || !in.tty() {
					pw, err = in.line()
				} else {
					pw, err = in.secret("Password for " + user + ": ")
				}
				if err != nil {
					return fmt.Errorf("reading the password: %w", err)
				}
				if pw == "" {
					return errors.New("the password is empty")
				}
				it, err = c.PasswordLogin(ctx, user, pw, totp)
				if client.IsTOTPRequired(err) && totp == "" {
					fmt.Fprint(env.Stderr, "TOTP code: ")
					code, rerr := in.line()
					if !in.tty() {
						fmt.Fprintln(env.Stderr)
					}
					if rerr != nil {
						return fmt.Errorf("this account needs a TOTP code (--totp CODE): %w", rerr)
					}
					it, err = c.PasswordLogin(ctx, user, pw, strings.TrimSpace(code))
				}
			}
			if err != nil {
				return fmt.Errorf("login failed: %w", err)
			}
			res := loginResult{Principal: it.Principal, Accessor: it.Accessor, Policies: it.Policies, ExpiresAt: it.ExpiresAt}
			if noSave {
				res.Token = it.Token
			} else if res.TokenFile, err = saveToken(env, it.Token); err != nil {
				return err
			}
			if asJSON {
				return printJSON(env.Stdout, res)
			}
			w := env.Stdout
			fmt.Fprintf(w, "Logged in as %s\n", it.Principal)
			fmt.Fprintf(w, "Policies:  %s\n", listOrNone(it.Policies))
			fmt.Fprintf(w, "Expires:   %s\n", expiry(it.ExpiresAt))
			if noSave {
				fmt.Fprintf(w, "Token:     %s\n", it.Token)
			} else {
				fmt.Fprintf(w, "Token saved to %s\n", res.TokenFile)
			}
			return nil
		},
	}
	addGlobals(cmd, g)
	f := cmd.Flags()
	f.BoolVar(&passwordStdin, "password-stdin", false, "read the password as one line of standard input")
	f.StringVar(&totp, "totp", "", "the TOTP code, when the account has TOTP")
	f.BoolVar(&service, "service", false, "log in as a service account (with --client-id)")
	f.StringVar(&clientID, "client-id", "", "the service account's client id")
	f.BoolVar(&jwtMode, "jwt", false, "log in with a workload JWT (with --issuer)")
	f.StringVar(&issuer, "issuer", "", "the name of the JWT issuer in keyward")
	f.StringVar(&jwtFile, "jwt-file", "", "read the JWT from this file")
	f.BoolVar(&noSave, "no-save", false, "print the token instead of saving it")
	return cmd
}

func newLogoutCmd(env *Env) *cobra.Command {
	g := &globals{}
	cmd := &cobra.Command{
		Use:   "logout",
		Short: "Revoke the current token and delete the saved token file",
		Long: `Revoke the token in use (KEYWARD_TOKEN, else the saved one) together with
the tokens created from it, and delete the token file keyward login wrote.
A token that had already expired or been revoked is not an error.`,
		Example: `  keyward logout`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, err := g.json()
			if err != nil {
				return err
			}
			envTok, fileTok := env.Getenv("KEYWARD_TOKEN"), savedToken(env)
			if envTok == "" && fileTok == "" {
				return fmt.Errorf("not logged in: KEYWARD_TOKEN is empty and there is no token at %s", tokenPath(env))
			}
			c, err := g.newClient(env)
			if err != nil {
				return err
			}
			n, err := c.RevokeSelf(cmd.Context())
			stale := client.IsCode(err, client.CodeUnauthenticated)
			if err != nil && !stale {
				return fmt.Errorf("revoking the token: %w", err)
			}
			removed := ""
			if fileTok != "" && (envTok == "" || subtle.ConstantTimeCompare([]byte(envTok), []byte(fileTok)) == 1) {
				if err := os.Remove(tokenPath(env)); err != nil && !errors.Is(err, os.ErrNotExist) {
					return fmt.Errorf("deleting the token file: %w", err)
				}
				removed = tokenPath(env)
			}
			if asJSON {
				return printJSON(env.Stdout, map[string]any{"revoked": n, "already_invalid": stale, "removed": removed})
			}
			w := env.Stdout
			switch {
			case stale:
				fmt.Fprintln(w, "The token had already expired or been revoked")
			default:
				fmt.Fprintf(w, "Revoked %s\n", plural(n, "token"))
			}
			if removed != "" {
				fmt.Fprintf(w, "Deleted %s\n", removed)
			}
			if envTok != "" {
				fmt.Fprintln(env.Stderr, "KEYWARD_TOKEN is still set in your environment: unset it.")
			}
			return nil
		},
	}
	addGlobals(cmd, g)
	return cmd
}

// plural formats "1 token", "3 tokens".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

// listOrNone joins a list for people.
func listOrNone(xs []string) string {
	if len(xs) == 0 {
		return "(none)"
	}
	return strings.Join(xs, ", ")
}

// expiry formats an expiry time with how far away it is.
func expiry(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "never"
	}
	left := time.Until(*t).Round(time.Second)
	if left <= 0 {
		return t.UTC().Format(time.RFC3339) + " (expired)"
	}
	return fmt.Sprintf("%s (in %s)", t.UTC().Format(time.RFC3339), left)
}
