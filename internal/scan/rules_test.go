package scan

import (
	"encoding/base64"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"

	"github.com/keyward/keyward/internal/credential"
	"github.com/keyward/keyward/internal/scan/source"
)

// Every value in these tests is generated here, at random, in the shape of a
// real credential. No real credential is stored anywhere in the repository.

const (
	csAlnum   = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	csHex     = "0123456789abcdef"
	csUpHex   = "0123456789ABCDEF"
	csLower   = "abcdefghijklmnopqrstuvwxyz"
	csLowNum  = "0123456789abcdefghijklmnopqrstuvwxyz"
	csUpNum   = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	csLetters = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	csDigits  = "0123456789"
	csB32     = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	csB64     = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	csB64URL  = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	csBech32  = "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L"
)

func rs(r *rand.Rand, cs string, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = cs[r.IntN(len(cs))]
	}
	return string(b)
}

// between returns a random int in [lo, hi].
func between(r *rand.Rand, lo, hi int) int { return lo + r.IntN(hi-lo+1) }

// ghStyle builds a GitHub-style token with a correct (or, if bad, a wrong)
// CRC32 checksum.
func ghStyle(r *rand.Rand, prefix string, bad bool) string {
	body := rs(r, csAlnum, 30)
	sum := credential.Base62CRC32(crc32.ChecksumIEEE([]byte(body)), 6)
	if bad {
		b := []byte(sum)
		b[5] = csAlnum[(strings.IndexByte(csAlnum, b[5])+1)%62]
		sum = string(b)
	}
	return prefix + body + sum
}

// ageKey builds an age identity with a valid (or corrupted) bech32 checksum.
func ageKey(r *rand.Rand, bad bool) string {
	const charset = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
	hrp := "age-secret-key-"
	data := make([]byte, 52)
	for i := range data {
		data[i] = byte(r.IntN(32))
	}
	values := []byte{}
	for i := 0; i < len(hrp); i++ {
		values = append(values, hrp[i]>>5)
	}
	values = append(values, 0)
	for i := 0; i < len(hrp); i++ {
		values = append(values, hrp[i]&31)
	}
	values = append(values, data...)
	values = append(values, 0, 0, 0, 0, 0, 0)
	gen := [5]uint32{0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3}
	chk := uint32(1)
	for _, v := range values {
		top := chk >> 25
		chk = (chk&0x1ffffff)<<5 ^ uint32(v)
		for i := range 5 {
			if (top>>i)&1 == 1 {
				chk ^= gen[i]
			}
		}
	}
	chk ^= 1
	if bad {
		chk ^= 1 << 7
	}
	var sb strings.Builder
	sb.WriteString("AGE-SECRET-KEY-1")
	for _, d := range data {
		sb.WriteByte(charset[d])
	}
	for i := range 6 {
		sb.WriteByte(charset[(chk>>(5*(5-i)))&31])
	}
	return strings.ToUpper(sb.String())
}

func b64url(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func makeJWT(r *rand.Rand, header string) string {
	payload := fmt.Sprintf(`{"sub":"%s","iat":%d,"name":"%s"}`, rs(r, csAlnum, 12), 1700000000+r.IntN(1e6), rs(r, csLower, 8))
	return b64url(header) + "." + b64url(payload) + "." + rs(r, csB64URL, 43)
}

func makePEM(r *rand.Rand, label string, sep string) string {
	var sb strings.Builder
	sb.WriteString("-----BEGIN " + label + "-----" + sep)
	for range between(r, 4, 20) {
		sb.WriteString(rs(r, csB64, 64) + sep)
	}
	sb.WriteString(rs(r, csB64, 20) + "==" + sep)
	sb.WriteString("-----END " + label + "-----")
	return sb.String()
}

func randB64Bytes(r *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.IntN(256))
	}
	return base64.StdEncoding.EncodeToString(b)
}

func uuidStr(r *rand.Rand) string {
	return rs(r, csHex, 8) + "-" + rs(r, csHex, 4) + "-" + rs(r, csHex, 4) + "-" + rs(r, csHex, 4) + "-" + rs(r, csHex, 12)
}

// neutral wraps a token in a context that names nothing secret, so that
// prefixed rules are shown to need no context.
func neutral(r *rand.Rand, s string) string {
	forms := []string{
		"value = \"%s\"",
		"X_VALUE=%s",
		"  item: %s",
		"{\"v\": \"%s\"}",
		"curl -H 'X-Thing: %s' https://api.invalid/v1",
		"const v = '%s';",
		"%s",
		"2024-05-01T10:00:00Z INFO got %s from cache",
	}
	return fmt.Sprintf(forms[r.IntN(len(forms))], s)
}

// assignCtx writes name = value in one of several file syntaxes.
func assignCtx(r *rand.Rand, name, value string) string {
	forms := []string{
		"%s = \"%s\"",
		"%s=%s",
		"%s: %s",
		"\"%s\": \"%s\",",
		"export %s='%s'",
		"%s := \"%s\"",
		"<%s>%s</x>",
	}
	return fmt.Sprintf(forms[r.IntN(len(forms))], name, value)
}

// ruleCase generates, for one rule, a text holding a secret the rule must
// report (and that secret), and a near miss it must not report.
type ruleCase struct {
	pos func(r *rand.Rand) (text, secret string)
	neg func(r *rand.Rand) string
}

// prefixed is the case of a token with a fixed prefix: the near miss has a
// body one character short.
func prefixed(prefix, cs string, lo, hi int) ruleCase {
	return ruleCase{
		pos: func(r *rand.Rand) (string, string) {
			s := prefix + rs(r, cs, between(r, lo, hi))
			return neutral(r, s), s
		},
		neg: func(r *rand.Rand) string { return neutral(r, prefix+rs(r, cs, lo-1)) },
	}
}

// built is the case of a token made by a function; bad=true gives a near miss.
func built(f func(r *rand.Rand, bad bool) string) ruleCase {
	return ruleCase{
		pos: func(r *rand.Rand) (string, string) { s := f(r, false); return neutral(r, s), s },
		neg: func(r *rand.Rand) string { return neutral(r, f(r, true)) },
	}
}

// contextual is the case of a value that is only a secret next to a telling
// name: the near miss is the same value under a neutral name.
func contextual(names []string, value func(r *rand.Rand) string) ruleCase {
	return ruleCase{
		pos: func(r *rand.Rand) (string, string) {
			v := value(r)
			return assignCtx(r, names[r.IntN(len(names))], v), v
		},
		neg: func(r *rand.Rand) string { return assignCtx(r, "build_number", value(r)) },
	}
}

func short(bad bool, n int) int {
	if bad {
		return n - 1
	}
	return n
}

var ruleCases = map[string]ruleCase{
	"keyward-token": built(func(r *rand.Rand, bad bool) string {
		s := credential.New(credential.Type("trkew"[r.IntN(5)]))
		if r.IntN(3) == 0 { // client API keys carry a live/test marker
			s = credential.NewMarked(credential.APIKey, []string{"live", "test"}[r.IntN(2)])
		}
		if bad {
			b := []byte(s)
			b[10] = csAlnum[(strings.IndexByte(csAlnum, b[10])+1)%62]
			s = string(b)
		}
		return s
	}),
	"aws-access-key-id": built(func(r *rand.Rand, bad bool) string {
		p := []string{"AKIA", "ASIA", "ABIA", "ACCA"}[r.IntN(4)]
		return p + rs(r, csB32, short(bad, 16))
	}),
	"aws-secret-access-key": contextual([]string{"aws_secret_access_key", "AWS_SECRET_ACCESS_KEY", "SecretAccessKey", "awsSecret"},
		func(r *rand.Rand) string { return rs(r, csB64, 40) }),
	"aws-session-token": contextual([]string{"aws_session_token", "AWS_SESSION_TOKEN"},
		func(r *rand.Rand) string { return rs(r, csB64, between(r, 200, 400)) }),
	"gcp-api-key":             prefixed("AIza", csAlnum+"_-", 35, 35),
	"gcp-oauth-client-secret": prefixed("GOCSPX-", csAlnum+"_-", 28, 28),
	"gcp-oauth-access-token":  prefixed("ya29.", csAlnum+"_-", 30, 200),
	"gcp-service-account-key": {
		pos: func(r *rand.Rand) (string, string) {
			pem := makePEM(r, "PRIVATE KEY", `\n`)
			return fmt.Sprintf("{\n  \"type\": \"service_account\",\n  \"private_key_id\": \"%s\",\n  \"private_key\": \"%s\\n\",\n  \"client_email\": \"x@p.iam.gserviceaccount.com\"\n}", rs(r, csHex, 40), pem), pem
		},
		neg: func(r *rand.Rand) string {
			return `{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----\n"}`
		},
	},
	"azure-storage-key": {
		pos: func(r *rand.Rand) (string, string) {
			k := randB64Bytes(r, 64)
			if r.IntN(2) == 0 {
				return "DefaultEndpointsProtocol=https;AccountName=acct" + rs(r, csLower, 6) + ";AccountKey=" + k + ";EndpointSuffix=core.windows.net", k
			}
			return assignCtx(r, "AZURE_STORAGE_KEY", k), k
		},
		neg: func(r *rand.Rand) string { return "AccountKey=" + randB64Bytes(r, 63) + ";" },
	},
	"azure-shared-access-key": {
		pos: func(r *rand.Rand) (string, string) {
			k := randB64Bytes(r, 32)
			return "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=Root;SharedAccessKey=" + k, k
		},
		neg: func(r *rand.Rand) string { return "SharedAccessKey=" + randB64Bytes(r, 30) },
	},
	"azure-ad-client-secret": built(func(r *rand.Rand, bad bool) string {
		mid := "Q~"
		if bad {
			mid = "Q-"
		}
		return rs(r, csAlnum, 3) + rs(r, csDigits, 1) + mid + rs(r, csAlnum+"_~.-", 34)
	}),
	"alibaba-access-key-id": prefixed("LTAI", csAlnum, 20, 20),
	"digitalocean-token": built(func(r *rand.Rand, bad bool) string {
		return []string{"dop", "doo", "dor"}[r.IntN(3)] + "_v1_" + rs(r, csHex, short(bad, 64))
	}),
	"linode-token":          contextual([]string{"LINODE_TOKEN", "linode_api_key"}, func(r *rand.Rand) string { return rs(r, csHex, 64) }),
	"heroku-api-key":        prefixed("HRKU-", csAlnum+"_-", 60, 60),
	"heroku-api-key-legacy": contextual([]string{"HEROKU_API_KEY", "heroku_key"}, uuidStr),
	"vercel-token":          contextual([]string{"VERCEL_TOKEN", "vercelToken"}, func(r *rand.Rand) string { return rs(r, csLetters, 20) + rs(r, csDigits, 4) }),
	"netlify-pat":           prefixed("nfp_", csAlnum, 36, 36),
	"netlify-token":         contextual([]string{"NETLIFY_AUTH_TOKEN", "netlify_token"}, func(r *rand.Rand) string { return rs(r, csAlnum, 36) + rs(r, csDigits, 7) }),
	"cloudflare-api-token":  contextual([]string{"CLOUDFLARE_API_TOKEN", "cf_api_token"}, func(r *rand.Rand) string { return rs(r, csAlnum, 38) + rs(r, csDigits, 2) }),
	"cloudflare-global-api-key": contextual([]string{"CLOUDFLARE_API_KEY", "cf_api_key"},
		func(r *rand.Rand) string { return rs(r, csHex, 37) }),
	"cloudflare-origin-ca-key": built(func(r *rand.Rand, bad bool) string {
		return "v1.0-" + rs(r, csHex, 24) + "-" + rs(r, csHex, short(bad, 146))
	}),
	"fly-access-token":  prefixed("fo1_", csAlnum+"_-", 43, 43),
	"render-api-key":    prefixed("rnd_", csAlnum, 32, 32),
	"supabase-token":    prefixed("sbp_", csHex, 40, 40),
	"planetscale-token": prefixed("pscale_tkn_", csAlnum, 32, 64),
	"databricks-token":  prefixed("dapi", csHex, 32, 32),
	"tailscale-key": built(func(r *rand.Rand, bad bool) string {
		return "tskey-auth-" + rs(r, csAlnum, 12) + "-" + rs(r, csAlnum, short(bad, 20)+10*btoi(!bad))
	}),
	"github-pat":           built(func(r *rand.Rand, bad bool) string { return ghStyle(r, "ghp_", bad) }),
	"github-oauth":         built(func(r *rand.Rand, bad bool) string { return ghStyle(r, "gho_", bad) }),
	"github-app-token":     built(func(r *rand.Rand, bad bool) string { return ghStyle(r, []string{"ghu_", "ghs_"}[r.IntN(2)], bad) }),
	"github-refresh-token": built(func(r *rand.Rand, bad bool) string { return ghStyle(r, "ghr_", bad) }),
	"github-fine-grained-pat": built(func(r *rand.Rand, bad bool) string {
		return "github_pat_" + rs(r, csAlnum, 22) + "_" + rs(r, csAlnum, short(bad, 59))
	}),
	"gitlab-pat": built(func(r *rand.Rand, bad bool) string {
		if r.IntN(2) == 0 {
			return "glpat-" + rs(r, csAlnum+"_-", short(bad, 20))
		}
		if bad {
			return "glpat-" + rs(r, csAlnum, 19)
		}
		return "glpat-" + rs(r, csAlnum+"_-", 36) + "." + rs(r, csLowNum, 2) + rs(r, csLowNum, 7)
	}),
	"gitlab-deploy-token":              prefixed("gldt-", csAlnum+"_-", 20, 20),
	"gitlab-runner-token":              prefixed("glrt-", csAlnum+"_-", 20, 64),
	"gitlab-runner-registration-token": prefixed("GR1348941", csAlnum+"_-", 20, 20),
	"gitlab-pipeline-trigger-token":    prefixed("glptt-", csHex, 40, 40),
	"gitlab-oauth-secret":              prefixed("gloas-", csHex, 64, 64),
	"bitbucket-app-password":           prefixed("ATBB", csAlnum, 32, 32),
	"bitbucket-access-token":           built(func(r *rand.Rand, bad bool) string { return atlassianToken(r, "ATCTT3", bad) }),
	"atlassian-api-token":              built(func(r *rand.Rand, bad bool) string { return atlassianToken(r, "ATATT3", bad) }),
	"buildkite-token":                  prefixed("bkua_", csHex, 40, 40),
	"sourcegraph-token": built(func(r *rand.Rand, bad bool) string {
		return "sgp_" + rs(r, csHex, 16) + "_" + rs(r, csHex, short(bad, 40))
	}),
	"sonarqube-token": built(func(r *rand.Rand, bad bool) string {
		return []string{"sqp_", "squ_", "sqa_"}[r.IntN(3)] + rs(r, csHex, short(bad, 40))
	}),
	"terraform-cloud-token": built(func(r *rand.Rand, bad bool) string {
		return rs(r, csAlnum, 14) + ".atlasv1." + rs(r, csAlnum, short(bad, 60)+5*btoi(!bad))
	}),
	"pulumi-access-token": prefixed("pul-", csHex, 40, 40),
	"vault-service-token": prefixed("hvs.", csAlnum+"_-", 90, 120),
	"vault-batch-token":   prefixed("hvb.", csAlnum+"_-", 138, 200),
	"vault-legacy-token": {
		pos: func(r *rand.Rand) (string, string) {
			v := "s." + rs(r, csAlnum, 24)
			return assignCtx(r, []string{"VAULT_TOKEN", "vault_token", "X-Vault-Token"}[r.IntN(3)], v), v
		},
		neg: func(r *rand.Rand) string { return assignCtx(r, "VAULT_TOKEN", "s."+rs(r, csAlnum, 23)) },
	},
	"doppler-token": built(func(r *rand.Rand, bad bool) string {
		return "dp." + []string{"pt", "st", "sa", "ct"}[r.IntN(4)] + "." + rs(r, csAlnum, short(bad, 40)+3*btoi(!bad))
	}),
	"onepassword-service-account-token": prefixed("ops_eyJ", csB64, 250, 600),
	"npm-token":                         prefixed("npm_", csAlnum, 36, 36),
	"npmrc-auth-token": {
		pos: func(r *rand.Rand) (string, string) {
			v := rs(r, csAlnum, 30) + rs(r, csDigits, 2)
			return "//npm.pkg.invalid/:_authToken=" + v, v
		},
		neg: func(r *rand.Rand) string { return "//npm.pkg.invalid/:_authToken=${NPM_TOKEN}" },
	},
	"pypi-token": built(func(r *rand.Rand, bad bool) string {
		if bad {
			return "pypi-AgEIcHlwaS5vcmc" + rs(r, csAlnum, 49)
		}
		return "pypi-AgEIcHlwaS5vcmc" + rs(r, csAlnum+"_-", between(r, 60, 200))
	}),
	"rubygems-api-key": prefixed("rubygems_", csHex, 48, 48),
	"nuget-api-key":    prefixed("oy2", csLowNum, 43, 43),
	"dockerhub-token":  prefixed("dckr_pat_", csAlnum+"_-", 27, 32),
	"docker-config-auth": {
		pos: func(r *rand.Rand) (string, string) {
			v := base64.StdEncoding.EncodeToString([]byte("user" + rs(r, csLower, 4) + ":" + rs(r, csAlnum, 14) + "!"))
			return `{"auths": {"registry.invalid": {"auth": "` + v + `"}}}`, v
		},
		neg: func(r *rand.Rand) string {
			return `{"auths": {"registry.invalid": {"auth": "` + base64.StdEncoding.EncodeToString([]byte("user"+rs(r, csLower, 4))) + `"}}}`
		},
	},
	"clojars-token": prefixed("CLOJARS_", csLowNum, 60, 60),
	"slack-bot-token": built(func(r *rand.Rand, bad bool) string {
		return "xoxb-" + rs(r, csDigits, 12) + "-" + rs(r, csDigits, 13) + "-" + rs(r, csAlnum, short(bad, 24)-3*btoi(bad))
	}),
	"slack-user-token": built(func(r *rand.Rand, bad bool) string {
		return "xoxp-" + rs(r, csDigits, 12) + "-" + rs(r, csDigits, 12) + "-" + rs(r, csDigits, 13) + "-" + rs(r, csHex, short(bad, 32)-4*btoi(bad))
	}),
	"slack-app-token": built(func(r *rand.Rand, bad bool) string {
		return "xapp-1-A" + rs(r, csUpNum, 10) + "-" + rs(r, csDigits, 13) + "-" + rs(r, csHex, short(bad, 64))
	}),
	"slack-config-token": built(func(r *rand.Rand, bad bool) string {
		return "xoxe.xoxp-1-" + rs(r, csAlnum, short(bad, 140)+20*btoi(!bad))
	}),
	"slack-refresh-token": built(func(r *rand.Rand, bad bool) string {
		return "xoxe-1-" + rs(r, csAlnum, short(bad, 140)+6*btoi(!bad))
	}),
	"slack-legacy-token": built(func(r *rand.Rand, bad bool) string {
		if bad {
			return "xoxs-" + rs(r, csAlnum, 7)
		}
		return "xoxs-" + rs(r, csDigits, 10) + "-" + rs(r, csDigits, 11) + "-" + rs(r, csHex, 12)
	}),
	"slack-webhook": built(func(r *rand.Rand, bad bool) string {
		if bad {
			return "https://hooks.slack.com/services/T" + rs(r, csUpNum, 8) + "/B" + rs(r, csUpNum, 8) + "/XXXXXXXXXXXXXXXXXXXXXXXX"
		}
		return "hooks.slack.com/services/T" + rs(r, csUpNum, 8) + "/B" + rs(r, csUpNum, 10) + "/" + rs(r, csAlnum, 24)
	}),
	"discord-bot-token": {
		pos: func(r *rand.Rand) (string, string) {
			v := "M" + rs(r, csAlnum, 23) + "." + rs(r, csAlnum+"_-", 6) + "." + rs(r, csAlnum+"_-", 27)
			return assignCtx(r, "DISCORD_BOT_TOKEN", v), v
		},
		neg: func(r *rand.Rand) string {
			return assignCtx(r, "build_number", "M"+rs(r, csAlnum, 23)+"."+rs(r, csAlnum, 6)+"."+rs(r, csAlnum, 27))
		},
	},
	"discord-webhook": built(func(r *rand.Rand, bad bool) string {
		return "https://discord.com/api/webhooks/" + rs(r, csDigits, 18) + "/" + rs(r, csAlnum+"_-", short(bad, 68)-8*btoi(bad))
	}),
	"telegram-bot-token": built(func(r *rand.Rand, bad bool) string {
		return rs(r, "123456789", 1) + rs(r, csDigits, 8) + ":AA" + rs(r, csAlnum+"_-", short(bad, 33))
	}),
	"twilio-api-key": prefixed("SK", csHex, 32, 32),
	"twilio-account-credentials": {
		pos: func(r *rand.Rand) (string, string) {
			tok := rs(r, csHex, 32)
			return "client = Client(\"AC" + rs(r, csHex, 32) + "\", \"" + tok + "\")", tok
		},
		neg: func(r *rand.Rand) string { return "account_sid = \"AC" + rs(r, csHex, 32) + "\"" },
	},
	"twilio-auth-token": contextual([]string{"TWILIO_AUTH_TOKEN", "twilioAuthToken"},
		func(r *rand.Rand) string { return rs(r, csHex, 32) }),
	"sendgrid-api-key": built(func(r *rand.Rand, bad bool) string {
		return "SG." + rs(r, csAlnum+"_-", 22) + "." + rs(r, csAlnum+"_-", short(bad, 43))
	}),
	"mailgun-api-key": prefixed("key-", csHex, 32, 32),
	"mailgun-private-key": contextual([]string{"MAILGUN_API_KEY", "mailgun_key"},
		func(r *rand.Rand) string { return rs(r, csHex, 32) + "-" + rs(r, csHex, 8) + "-" + rs(r, csHex, 8) }),
	"mailchimp-api-key": built(func(r *rand.Rand, bad bool) string {
		return rs(r, csHex, short(bad, 32)) + "-us" + fmt.Sprint(between(r, 1, 21))
	}),
	"postman-api-key": built(func(r *rand.Rand, bad bool) string {
		return "PMAK-" + rs(r, csHex, 24) + "-" + rs(r, csHex, short(bad, 34))
	}),
	"linear-api-key": prefixed("lin_api_", csAlnum, 40, 40),
	"notion-token": built(func(r *rand.Rand, bad bool) string {
		return "ntn_" + rs(r, csDigits, 11) + rs(r, csAlnum, short(bad, 35))
	}),
	"figma-token":           prefixed("figd_", csAlnum+"_-", 40, 40),
	"twitter-bearer-token":  prefixed(strings.Repeat("A", 22), csAlnum+"%", 80, 110),
	"facebook-access-token": prefixed("EAACEdEose0cBA", csAlnum, 20, 200),
	"okta-api-token": contextual([]string{"OKTA_API_TOKEN", "okta_token"},
		func(r *rand.Rand) string { return "00" + rs(r, csAlnum+"_-", 40) }),
	"stripe-secret-key":     prefixed("sk_live_", csAlnum, 24, 99),
	"stripe-restricted-key": prefixed("rk_live_", csAlnum, 24, 99),
	"stripe-test-key": {
		pos: func(r *rand.Rand) (string, string) {
			s := []string{"sk", "rk"}[r.IntN(2)] + "_test_" + rs(r, csAlnum, between(r, 24, 99))
			return neutral(r, s), s
		},
		neg: func(r *rand.Rand) string { return neutral(r, "sk_test_4eC39HqLyjWDarjtT1zdp7dc") }, // Stripe's documented key
	},
	"stripe-webhook-secret": prefixed("whsec_", csAlnum, 32, 64),
	"braintree-access-token": built(func(r *rand.Rand, bad bool) string {
		return "access_token$production$" + rs(r, csLowNum, 16) + "$" + rs(r, csHex, short(bad, 32))
	}),
	"square-access-token":       prefixed("sq0atp-", csAlnum+"_-", 22, 22),
	"square-oauth-secret":       prefixed("sq0csp-", csAlnum+"_-", 43, 43),
	"shopify-access-token":      prefixed("shpat_", csHex, 32, 32),
	"shopify-shared-secret":     prefixed("shpss_", csHex, 32, 32),
	"shopify-custom-app-token":  prefixed("shpca_", csHex, 32, 32),
	"shopify-private-app-token": prefixed("shppa_", csHex, 32, 32),
	"shippo-api-token":          prefixed("shippo_live_", csHex, 40, 40),
	"flutterwave-secret-key": built(func(r *rand.Rand, bad bool) string {
		return "FLWSECK-" + rs(r, csHex, short(bad, 32)) + "-X"
	}),
	"easypost-api-key": prefixed("EZAK", csAlnum, 54, 54),
	"openai-api-key": built(func(r *rand.Rand, bad bool) string {
		if bad {
			return "sk-proj-" + rs(r, csAlnum, 74) + "T3BlbkFJ" + rs(r, csAlnum, 19)
		}
		if r.IntN(2) == 0 {
			return "sk-" + rs(r, csAlnum, 20) + "T3BlbkFJ" + rs(r, csAlnum, 20)
		}
		return "sk-proj-" + rs(r, csAlnum+"_-", 74) + "T3BlbkFJ" + rs(r, csAlnum+"_-", 74)
	}),
	"anthropic-api-key": built(func(r *rand.Rand, bad bool) string {
		return "sk-ant-api03-" + rs(r, csAlnum+"_-", short(bad, 93)) + "AA"
	}),
	"anthropic-admin-key": built(func(r *rand.Rand, bad bool) string {
		return "sk-ant-admin01-" + rs(r, csAlnum+"_-", short(bad, 93)) + "AA"
	}),
	"openrouter-api-key":    prefixed("sk-or-v1-", csHex, 64, 64),
	"huggingface-token":     prefixed("hf_", csLetters, 34, 34),
	"huggingface-org-token": prefixed("api_org_", csLetters, 34, 34),
	"groq-api-key":          prefixed("gsk_", csAlnum, 52, 52),
	"cohere-api-key": contextual([]string{"COHERE_API_KEY", "cohere_key"},
		func(r *rand.Rand) string { return rs(r, csAlnum, 37) + rs(r, csDigits, 3) }),
	"replicate-api-token": prefixed("r8_", csAlnum, 37, 37),
	"perplexity-api-key":  prefixed("pplx-", csAlnum, 48, 48),
	"xai-api-key":         prefixed("xai-", csAlnum, 80, 80),
	"langsmith-api-key": built(func(r *rand.Rand, bad bool) string {
		return "lsv2_pt_" + rs(r, csHex, 32) + "_" + rs(r, csHex, short(bad, 10))
	}),
	"prefect-api-key": prefixed("pnu_", csAlnum, 36, 36),
	"mapbox-secret-token": built(func(r *rand.Rand, bad bool) string {
		return "sk.eyJ" + rs(r, csAlnum, 60) + "." + rs(r, csAlnum+"_-", short(bad, 20)+2*btoi(!bad))
	}),
	"datadog-api-key":     contextual([]string{"DD_API_KEY", "datadog_api_key"}, func(r *rand.Rand) string { return rs(r, csHex, 32) }),
	"datadog-app-key":     contextual([]string{"DD_APP_KEY", "datadog_app_key"}, func(r *rand.Rand) string { return rs(r, csHex, 40) }),
	"newrelic-user-key":   prefixed("NRAK-", csUpNum, 27, 27),
	"newrelic-insert-key": prefixed("NRII-", csAlnum+"_-", 32, 32),
	"newrelic-license-key": built(func(r *rand.Rand, bad bool) string {
		return rs(r, csHex, short(bad, 36)) + "NRAL"
	}),
	"sentry-org-token":  prefixed("sntrys_eyJ", csB64, 60, 300),
	"sentry-user-token": prefixed("sntryu_", csHex, 64, 64),
	"sentry-dsn": built(func(r *rand.Rand, bad bool) string {
		return "https://" + rs(r, csHex, short(bad, 32)) + "@o" + rs(r, csDigits, 6) + ".ingest.sentry.io/" + rs(r, csDigits, 7)
	}),
	"dynatrace-token": built(func(r *rand.Rand, bad bool) string {
		return "dt0c01." + rs(r, csUpNum, 24) + "." + rs(r, csUpNum, short(bad, 64))
	}),
	"grafana-cloud-token": prefixed("glc_", csB64, 32, 200),
	"grafana-service-account-token": built(func(r *rand.Rand, bad bool) string {
		return "glsa_" + rs(r, csAlnum, 32) + "_" + rs(r, csHex, short(bad, 8))
	}),
	"age-secret-key": built(ageKey),
	"private-key": {
		pos: func(r *rand.Rand) (string, string) {
			label := []string{"RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY", "DSA PRIVATE KEY"}[r.IntN(5)]
			sep := "\n"
			if r.IntN(3) == 0 {
				sep = `\n`
			}
			p := makePEM(r, label, sep)
			return "key := `" + p + "`\n", p
		},
		neg: func(r *rand.Rand) string {
			return "-----BEGIN RSA PRIVATE KEY-----\n...your key here...\n-----END RSA PRIVATE KEY-----\n"
		},
	},
	"encrypted-private-key": {
		pos: func(r *rand.Rand) (string, string) {
			p := makePEM(r, "ENCRYPTED PRIVATE KEY", "\n")
			return p + "\n", p
		},
		neg: func(r *rand.Rand) string {
			return "-----BEGIN ENCRYPTED PRIVATE KEY-----\n" + strings.Repeat("A", 64) + "\n-----END ENCRYPTED PRIVATE KEY-----"
		},
	},
	"jwt": built(func(r *rand.Rand, bad bool) string {
		if bad {
			return makeJWT(r, `{"typ":"JWT","kid":"`+rs(r, csAlnum, 8)+`"}`) // no alg
		}
		return makeJWT(r, `{"alg":"HS256","typ":"JWT"}`)
	}),
	"postgres-url-password": dbURLCase([]string{"postgres", "postgresql", "postgresql+psycopg2"}),
	"mysql-url-password":    dbURLCase([]string{"mysql", "mariadb"}),
	"mongodb-url-password":  dbURLCase([]string{"mongodb", "mongodb+srv"}),
	"redis-url-password":    dbURLCase([]string{"redis", "rediss"}),
	"amqp-url-password":     dbURLCase([]string{"amqp", "amqps"}),
	"url-basic-auth":        dbURLCase([]string{"https", "ftp", "smtp"}),
	"authorization-bearer": {
		pos: func(r *rand.Rand) (string, string) {
			v := rs(r, csAlnum, 36) + rs(r, csDigits, 4)
			return "curl -H \"Authorization: Bearer " + v + "\" https://api.invalid/", v
		},
		neg: func(r *rand.Rand) string { return "curl -H \"Authorization: Bearer $TOKEN\" https://api.invalid/" },
	},
	"authorization-basic": {
		pos: func(r *rand.Rand) (string, string) {
			v := base64.StdEncoding.EncodeToString([]byte(rs(r, csLower, 6) + ":" + rs(r, csAlnum, 12) + "7"))
			return "Authorization: Basic " + v, v
		},
		neg: func(r *rand.Rand) string {
			return "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(rs(r, csLower, 6)+":password"))
		},
	},
	"generic-password": {
		pos: func(r *rand.Rand) (string, string) {
			v := rs(r, csLetters, 8) + rs(r, csDigits, 2) + "!" + rs(r, csAlnum, 3)
			return assignCtx(r, []string{"password", "DB_PASSWORD", "db.password", "adminPasswd"}[r.IntN(4)], v), v
		},
		neg: func(r *rand.Rand) string {
			return assignCtx(r, "DB_PASSWORD", []string{"${DB_PASSWORD}", "changeme", "<your-password>", "********", "os.Getenv(\"X\")"}[r.IntN(5)])
		},
	},
	"generic-secret": {
		pos: func(r *rand.Rand) (string, string) {
			v := rs(r, csAlnum, 28) + rs(r, csDigits, 4)
			return assignCtx(r, []string{"api_key", "client_secret", "AUTH_TOKEN", "signingKey", "private_key"}[r.IntN(5)], v), v
		},
		neg: func(r *rand.Rand) string {
			return assignCtx(r, []string{"api_key", "secret_name", "token_hash", "Secret"}[r.IntN(4)],
				// (a secret reference or path is not a secret)
				[]string{"aaaaaaaaaaaaaaaaaaaaaaaa", "config.Settings.ApiKey", "pay/prod/missing", "projects/payments/envs/prod"}[r.IntN(4)])
		},
	},
}

// atlassianToken builds an Atlassian-style token: prefix, body, "=" and an
// 8-hex-digit suffix (the near miss lacks the suffix).
func atlassianToken(r *rand.Rand, prefix string, bad bool) string {
	t := prefix + "xFfGF0" + rs(r, csAlnum+"_-", between(r, 160, 190))
	if !bad {
		t += "=" + rs(r, csUpHex, 8)
	}
	return t
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// dbURLCase builds scheme://user:password@host URLs; the near miss has a
// placeholder password.
func dbURLCase(schemes []string) ruleCase {
	return ruleCase{
		pos: func(r *rand.Rand) (string, string) {
			pw := rs(r, csAlnum, 14) + rs(r, csDigits, 2)
			u := schemes[r.IntN(len(schemes))] + "://app" + rs(r, csLower, 3) + ":" + pw + "@db" + rs(r, csLower, 4) + ".internal:5432/app"
			return assignCtx(r, "url", u), pw
		},
		neg: func(r *rand.Rand) string {
			pw := []string{"${DB_PASS}", "password", "<password>", "****", "changeme"}[r.IntN(5)]
			return assignCtx(r, "url", schemes[r.IntN(len(schemes))]+"://app:"+pw+"@db.internal:5432/app")
		},
	}
}

func TestEveryRuleHasACase(t *testing.T) {
	rules := DefaultRules()
	if len(rules) < 60 {
		t.Fatalf("DefaultRules has %d rules, want at least 60", len(rules))
	}
	ids := map[string]bool{}
	for _, r := range rules {
		if ids[r.ID] {
			t.Errorf("duplicate rule id %q", r.ID)
		}
		ids[r.ID] = true
		if _, ok := ruleCases[r.ID]; !ok {
			t.Errorf("rule %q has no generated test case", r.ID)
		}
		if r.Description == "" || r.Severity.Rank() == 0 {
			t.Errorf("rule %q lacks a description or severity", r.ID)
		}
		if len(r.Keywords) == 0 {
			t.Errorf("rule %q has no keywords", r.ID)
		}
		for _, k := range r.Keywords {
			if k != strings.ToLower(k) {
				t.Errorf("rule %q keyword %q is not lower-case", r.ID, k)
			}
		}
	}
	for id := range ruleCases {
		if !ids[id] {
			t.Errorf("test case for unknown rule %q", id)
		}
	}
}

func TestRulesTruePositivesAndNearMisses(t *testing.T) {
	e, err := NewEngine(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, rule := range e.Rules() {
		c, ok := ruleCases[rule.ID]
		if !ok {
			continue // reported by TestEveryRuleHasACase
		}
		t.Run(rule.ID, func(t *testing.T) {
			seed := crc32.ChecksumIEEE([]byte(rule.ID))
			r := rand.New(rand.NewPCG(uint64(seed), 1))
			for i := range 25 {
				text, secret := c.pos(r)
				fs := e.Scan(&source.Fragment{Path: "app/config.txt", Data: []byte("first line\n" + text + "\nlast line\n"), StartLine: 1})
				found := false
				for _, f := range fs {
					if f.Rule == rule.ID && f.Secret == secret {
						found = true
					}
				}
				if !found {
					t.Fatalf("iteration %d: rule %s did not report its secret in %q; findings: %v", i, rule.ID, text, summarize(fs))
				}
				neg := c.neg(r)
				for _, f := range e.Scan(&source.Fragment{Path: "app/config.txt", Data: []byte(neg + "\n")}) {
					if f.Rule == rule.ID {
						t.Fatalf("iteration %d: rule %s reported the near miss %q (secret %q)", i, rule.ID, neg, f.Secret)
					}
				}
			}
		})
	}
}

func summarize(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, fmt.Sprintf("%s:%q", f.Rule, f.Secret))
	}
	return out
}

// countGroups, which spares compiling every built-in regex at start-up,
// agrees with the regexp package on every built-in rule and on tricky
// patterns.
func TestCountGroups(t *testing.T) {
	for _, r := range DefaultRules() {
		if got, want := countGroups(r.source()), regexp.MustCompile(r.source()).NumSubexp(); got != want {
			t.Errorf("rule %s: countGroups = %d, NumSubexp = %d", r.ID, got, want)
		}
		if r.Regex != nil {
			t.Errorf("rule %s: built-in regex compiled before first use", r.ID)
		}
	}
	for _, re := range []string{`a(b)c`, `\(x\)`, `[(]`, `[^(]`, `[]()]`, `[[:alpha:](]`, `(?:x)(y)`, `(?P<n>x)`, `(?<n>x)`, `(?i)(a)`, `[\]()](z)`, `((a)(b))`} {
		if got, want := countGroups(re), regexp.MustCompile(re).NumSubexp(); got != want {
			t.Errorf("countGroups(%q) = %d, want %d", re, got, want)
		}
	}
}
