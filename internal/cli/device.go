package cli

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/keyward/keyward/client"
	"github.com/spf13/cobra"
)

func newDeviceCmd(env *Env) *cobra.Command {
	g := &globals{}
	cmd := &cobra.Command{
		Use:   "device",
		Short: "Enroll devices with a key of their own, and manage them",
		Long: `Devices (firmware, kiosks, sensors) get no shared secret. An operator makes
an enrollment code for a batch; each device generates a key pair (in its
secure element when it has one) and enrolls with the code and a DPoP proof
signed by that key. From then on the device gets tokens bound to its key
(at most 15 minutes) and signs every request, so a copied token is useless.
Disabling a device revokes its tokens at once. See docs/mobile.md.

keyward device enroll and keyward device token do a device's part with a key
file, to try the flow or for devices that run the CLI.`,
		Example: `  keyward device enrollment create --policy thermostat --uses 500 --ttl 72h --label batch-42
  keyward device enroll kwe_... --key device.pem --name kitchen      # on the device
  keyward device token dev_... --key device.pem                      # on the device
  keyward device disable dev_...`,
	}
	addGlobals(cmd, g)
	enr := &cobra.Command{Use: "enrollment", Short: "Make, list and revoke enrollment codes"}
	enr.AddCommand(deviceEnrollmentCreateCmd(env, g), deviceEnrollmentListCmd(env, g),
		simpleNameCmd(env, g, "revoke ID", "Revoke an enrollment code (devices enrolled with it stay)", "  keyward device enrollment revoke enr_...",
			func(c *client.Client, cmd *cobra.Command, id string) error {
				return c.RevokeEnrollment(cmd.Context(), id)
			}, "revoked enrollment %s"))
	cmd.AddCommand(enr, deviceListCmd(env, g), deviceGetCmd(env, g),
		deviceSetCmd(env, g, true), deviceSetCmd(env, g, false),
		simpleNameCmd(env, g, "delete ID", "Delete a device and revoke its tokens", "  keyward device delete dev_...",
			func(c *client.Client, cmd *cobra.Command, id string) error { return c.DeleteDevice(cmd.Context(), id) }, "deleted device %s"),
		deviceEnrollCmd(env, g), deviceTokenCmd(env, g))
	return cmd
}

func deviceEnrollmentCreateCmd(env *Env, g *globals) *cobra.Command {
	var label, ttl string
	var policies []string
	var uses int
	cmd := &cobra.Command{
		Use:   "create --policy NAME... [--uses N] [--ttl 24h] [--label LABEL]",
		Short: "Make an enrollment code (shown once) for a batch of devices",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(policies) == 0 {
				return Usagef("give --policy NAME (repeatable): what the devices may do")
			}
			asJSON, c, err := g.setup(env)
			if err != nil {
				return err
			}
			code, e, err := c.CreateEnrollment(cmd.Context(), label, policies, uses, ttl)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(env.Stdout, map[string]any{"code": code, "enrollment": e})
			}
			fmt.Fprintf(env.Stdout, "Code:       %s\nId:         %s\nPolicies:   %s\nDevices:    %d\nExpires:    %s\n",
				code, e.ID, strings.Join(e.Policies, ", "), e.Uses, e.ExpiresAt.Local().Format(time.DateTime))
			fmt.Fprintln(env.Stderr, "The code is shown once: put it in the devices' provisioning now.")
			return nil
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&policies, "policy", nil, "a policy the devices get (repeatable)")
	f.IntVar(&uses, "uses", 1, "how many devices may enroll with the code")
	f.StringVar(&ttl, "ttl", "", "how long the code works (default 24h, at most 720h)")
	f.StringVar(&label, "label", "", "a label for the batch (A-Z a-z 0-9 . _ -)")
	return cmd
}

func deviceEnrollmentListCmd(env *Env, g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List enrollment codes (never the codes themselves)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, c, err := g.setup(env)
			if err != nil {
				return err
			}
			es, err := c.Enrollments(cmd.Context())
			if err != nil {
				return err
			}
			return printList(env.Stdout, asJSON, es, "ID\tLABEL\tPOLICIES\tLEFT\tEXPIRES\tSTATE", func(e client.Enrollment) string {
				state := "live"
				switch {
				case !e.RevokedAt.IsZero():
					state = "revoked"
				case time.Now().After(e.ExpiresAt):
					state = "expired"
				case e.Remaining == 0:
					state = "used up"
				}
				return fmt.Sprintf("%s\t%s\t%s\t%d/%d\t%s\t%s", e.ID, e.Label, strings.Join(e.Policies, ","), e.Remaining, e.Uses, e.ExpiresAt.UTC().Format(time.RFC3339), state)
			})
		},
	}
}

func deviceListCmd(env *Env, g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List enrolled devices",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, c, err := g.setup(env)
			if err != nil {
				return err
			}
			var all []client.Device
			for cursor := ""; ; {
				ds, err := c.Devices(cmd.Context(), 1000, cursor)
				if err != nil {
					return err
				}
				all = append(all, ds...)
				if len(ds) < 1000 {
					break
				}
				cursor = ds[len(ds)-1].ID
			}
			return printList(env.Stdout, asJSON, all, "ID\tNAME\tPOLICIES\tENROLLED\tSTATE", func(d client.Device) string {
				state := "enabled"
				if !d.DisabledAt.IsZero() {
					state = "disabled"
				}
				return fmt.Sprintf("%s\t%s\t%s\t%s\t%s", d.ID, d.Name, strings.Join(d.Policies, ","), d.CreatedAt.UTC().Format(time.RFC3339), state)
			})
		},
	}
}

func deviceGetCmd(env *Env, g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "get ID",
		Short: "Show a device",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, c, err := g.setup(env)
			if err != nil {
				return err
			}
			d, err := c.GetDevice(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(env.Stdout, d)
			}
			state := "enabled"
			if !d.DisabledAt.IsZero() {
				state = "disabled since " + d.DisabledAt.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(env.Stdout, "Id:         %s\nName:       %s\nPolicies:   %s\nKey:        %s (JWK thumbprint)\nEnrollment: %s\nEnrolled:   %s\nState:      %s\n",
				d.ID, d.Name, strings.Join(d.Policies, ", "), d.JKT, d.EnrollmentID, d.CreatedAt.UTC().Format(time.RFC3339), state)
			return nil
		},
	}
}

func deviceSetCmd(env *Env, g *globals, disabled bool) *cobra.Command {
	use, short, done := "enable ID", "Enable a disabled device again", "enabled"
	if disabled {
		use, short, done = "disable ID", "Disable a device: no more tokens, and the ones it holds are revoked", "disabled"
	}
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, c, err := g.setup(env)
			if err != nil {
				return err
			}
			d, err := c.SetDeviceDisabled(cmd.Context(), args[0], disabled)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(env.Stdout, d)
			}
			fmt.Fprintf(env.Stdout, "%s device %s\n", done, d.ID)
			return nil
		},
	}
}

// deviceKey reads the device's ECDSA P-256 key from path (PEM, SEC 1 or
// PKCS #8), or makes one there (mode 0600) when the file does not exist.
func deviceKey(env *Env, path string) (*ecdsa.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			return nil, err
		}
		if err := writePrivateFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})); err != nil {
			return nil, fmt.Errorf("writing the new device key: %w", err)
		}
		fmt.Fprintf(env.Stderr, "made a new device key in %s (mode 0600)\n", path)
		return k, nil
	}
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("%s: not a PEM file", path)
	}
	var key any
	switch blk.Type {
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(blk.Bytes)
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	default:
		return nil, fmt.Errorf("%s: a %s, want an EC PRIVATE KEY or PRIVATE KEY", path, blk.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	k, ok := key.(*ecdsa.PrivateKey)
	if !ok || k.Curve != elliptic.P256() {
		return nil, fmt.Errorf("%s: want an ECDSA P-256 key", path)
	}
	return k, nil
}

// deviceSetup is setup for a device's own commands: the output format,
// then a client signing DPoP proofs with the key in keyPath.
func (g *globals) deviceSetup(env *Env, keyPath string) (bool, *client.Client, error) {
	asJSON, err := g.json()
	if err != nil {
		return false, nil, err
	}
	if keyPath == "" {
		return false, nil, Usagef("give --key FILE: the device's ECDSA P-256 key (made there when missing)")
	}
	k, err := deviceKey(env, keyPath)
	if err != nil {
		return false, nil, err
	}
	prove, err := client.NewES256Prover(k)
	if err != nil {
		return false, nil, err
	}
	c, err := g.newProverClient(env, prove)
	return asJSON, c, err
}

func deviceEnrollCmd(env *Env, g *globals) *cobra.Command {
	var keyPath, name string
	cmd := &cobra.Command{
		Use:   "enroll CODE --key FILE [--name NAME]",
		Short: "Enroll this device with a code, under the key in FILE (made when missing)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, c, err := g.deviceSetup(env, keyPath)
			if err != nil {
				return err
			}
			id, err := c.Enroll(cmd.Context(), args[0], name)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(env.Stdout, map[string]string{"device_id": id})
			}
			fmt.Fprintf(env.Stdout, "Enrolled device %s\n", id)
			fmt.Fprintf(env.Stderr, "Get a token with: keyward device token %s --key %s\n", id, keyPath)
			return nil
		},
	}
	cmd.Flags().StringVar(&keyPath, "key", "", "the device's key (PEM, ECDSA P-256); made there when the file does not exist")
	cmd.Flags().StringVar(&name, "name", "", "a name for the device (A-Z a-z 0-9 . _ -)")
	return cmd
}

func deviceTokenCmd(env *Env, g *globals) *cobra.Command {
	var keyPath string
	cmd := &cobra.Command{
		Use:   "token DEVICE_ID --key FILE",
		Short: "Get a token bound to the device's key (its calls then need a DPoP proof each)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, c, err := g.deviceSetup(env, keyPath)
			if err != nil {
				return err
			}
			res, err := c.DeviceToken(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(env.Stdout, res)
			}
			fmt.Fprintf(env.Stdout, "Token:      %s\nType:       %s (send it as Authorization: DPoP, with a proof signed by the key)\nExpires in: %ds\nPolicies:   %s\n",
				res.AccessToken, res.TokenType, res.ExpiresIn, res.Scope)
			return nil
		},
	}
	cmd.Flags().StringVar(&keyPath, "key", "", "the device's key (PEM, ECDSA P-256)")
	return cmd
}
