package scan

import (
	"regexp"
	"slices"
	"strings"
	"sync"
)

// The built-in rules follow the formats providers publish (prefixes, lengths,
// alphabets, checksums). A token with a fixed prefix needs no context; a key
// without one (a bare 32-hex string) is only reported when it is assigned to
// a name that says what it is. Rule IDs are stable: they appear in reports,
// fingerprints and users' configuration.

// Token boundaries. A token must not continue into more token characters,
// so that a shape is not matched inside a longer string.
const (
	endAlnum = `(?:[^0-9A-Za-z]|$)`       // for tokens of [0-9A-Za-z]
	endWord  = `(?:[^0-9A-Za-z_-]|$)`     // for tokens that may hold _ and -
	endB64   = `(?:[^0-9A-Za-z+/=]|$)`    // for standard base64
	endDot   = `(?:[^0-9A-Za-z_.-]|$)`    // for tokens that may hold . _ -
	quote    = "[\"'`]?"                  // an optional quote
	assignOp = `\s*(?::=|=>|==|=|:|>)\s*` // =, :, :=, =>, == and XML's >
	// valueEnd is what may follow a value found by assignment: a quote,
	// space, separator, an escaped newline, or the end of the line.
	valueEnd = "(?:[\"'`\\s,;)&<]|\\\\[nr]|$)"
)

// assign returns a regex for `<name…> <op> <value>`: a name matching names
// (case-insensitive), up to 24 more identifier characters, an optional
// closing quote, an assignment operator, an optional opening quote and the
// value in group 1. It covers code, env files, YAML, JSON, TOML and XML.
func assign(names, value string) string {
	return `(?:` + `(?i:` + names + `)` + `)[\w.-]{0,24}?` + quote + assignOp + quote + `(` + value + `)` + valueEnd
}

// nameVariants turns names like "secret_access_key", where '_' stands for
// an optional separator, into a regex alternation and the list of their
// lower-case spellings ("secret_access_key", "secret-access-key",
// "secret.access.key", "secretaccesskey", and mixes).
func nameVariants(names ...string) (alt string, keywords []string) {
	var parts []string
	seen := map[string]bool{}
	for _, n := range names {
		n = strings.ToLower(n)
		parts = append(parts, strings.ReplaceAll(regexp.QuoteMeta(n), "_", `[_.-]?`))
		spellings := []string{""}
		for i, piece := range strings.Split(n, "_") {
			var next []string
			for _, sp := range spellings {
				if i == 0 {
					next = append(next, piece)
					continue
				}
				for _, sep := range []string{"_", "-", ".", ""} {
					next = append(next, sp+sep+piece)
				}
			}
			spellings = next
		}
		for _, sp := range spellings {
			if !seen[sp] {
				seen[sp] = true
				keywords = append(keywords, sp)
			}
		}
	}
	return strings.Join(parts, "|"), keywords
}

// tok returns a regex for a prefixed token in group 1 followed by the given
// trailing boundary. The leading word boundary is checked by the engine
// (Rule.leftBound) rather than written as \b, because a leading \b stops Go's
// regexp from using the token's literal prefix to skip through a window.
func tok(body, end string) string { return leftBoundMark + `(` + body + `)` + end }

// leftBoundMark, at the start of a regex passed to add, sets Rule.leftBound.
const leftBoundMark = "\x00"

// DefaultRules returns the built-in rules (a fresh copy each call; the
// compiled regexes are shared, which is safe).
func DefaultRules() []*Rule {
	rs := builtinRules()
	out := make([]*Rule, len(rs))
	for i, r := range rs {
		c := *r
		c.Keywords = slices.Clone(r.Keywords)
		c.Allow = slices.Clone(r.Allow)
		c.AllowMatch = slices.Clone(r.AllowMatch)
		out[i] = &c
	}
	return out
}

// countGroups counts the capture groups of a regex without parsing it
// fully: every '(' that is not escaped, not inside a character class and
// not followed by '?' (or followed by "?P<" or "?<", a named group). It is
// exact for the built-in rules (a test compares it with NumSubexp for each).
func countGroups(re string) int {
	n := 0
	for i := 0; i < len(re); i++ {
		switch re[i] {
		case '\\':
			i++
		case '[':
			i++
			if i < len(re) && re[i] == '^' {
				i++
			}
			if i < len(re) && re[i] == ']' {
				i++ // a leading ']' is a literal
			}
			for ; i < len(re) && re[i] != ']'; i++ {
				switch {
				case re[i] == '\\':
					i++
				case strings.HasPrefix(re[i:], "[:"):
					if j := strings.Index(re[i+2:], ":]"); j >= 0 {
						i += j + 3
					}
				}
			}
		case '(':
			rest := re[i+1:]
			if !strings.HasPrefix(rest, "?") || strings.HasPrefix(rest, "?P<") || strings.HasPrefix(rest, "?<") {
				n++
			}
		}
	}
	return n
}

var builtinRules = sync.OnceValue(func() []*Rule {
	var rs []*Rule
	// Token rules whose keyword is not where the token starts run over
	// windows; every other token rule runs anchored at its keyword.
	notAtStart := map[string]bool{"telegram-bot-token": true, "mailchimp-api-key": true,
		"newrelic-license-key": true, "terraform-cloud-token": true, "openai-api-key": true}
	add := func(r *Rule, re string) *Rule {
		re, r.leftBound = strings.CutPrefix(re, leftBoundMark)
		if r.leftBound && !notAtStart[r.ID] {
			r.KeywordStart = true
		}
		r.pattern, r.groups = re, countGroups(re)
		r.lazy = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(re) })
		if r.SecretGroup == 0 && r.groups >= 1 {
			r.SecretGroup = 1
		}
		rs = append(rs, r)
		return r
	}
	kw := func(k ...string) []string { return k }
	// ctx adds a rule for a value assigned to one of names, written with
	// '_' where a separator (_ . -) may or may not appear; the keywords are
	// the names' spellings, and the regex runs anchored at them.
	ctx := func(r *Rule, value string, names ...string) {
		alt, kws := nameVariants(names...)
		r.Keywords = kws
		r.KeywordStart = true
		add(r, assign(alt, value))
	}

	// ---- keyward's own credentials ----
	add(&Rule{ID: "keyward-token", Description: "keyward credential (kwt_, kwr_, kwk_, kwe_, kww_)", Severity: Critical,
		Keywords: kw("kwt_", "kwr_", "kwk_", "kwe_", "kww_"), Validate: validKeyward},
		tok(`kw[trkew]_[0-9A-Za-z]{46}`, endAlnum))

	// ---- cloud providers ----
	add(&Rule{ID: "aws-access-key-id", Description: "AWS access key ID", Severity: High,
		Keywords: kw("akia", "asia", "abia", "acca", "a3t"), Entropy: 3.0},
		tok(`(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}`, endAlnum))
	ctx(&Rule{ID: "aws-secret-access-key", Description: "AWS secret access key assigned to an AWS name", Severity: Critical,
		Entropy: 4.0, Validate: validMixed},
		`[A-Za-z0-9/+]{40}`, "aws_secret", "secret_access_key")
	ctx(&Rule{ID: "aws-session-token", Description: "AWS session token assigned to an AWS name", Severity: High, Entropy: 4.0, Window: 2048},
		`[A-Za-z0-9/+=]{100,}`, "aws_session_token", "x_amz_security_token")
	add(&Rule{ID: "gcp-api-key", Description: "Google Cloud API key", Severity: High,
		Keywords: kw("aiza"), Entropy: 3.0},
		tok(`AIza[0-9A-Za-z_-]{35}`, endWord))
	add(&Rule{ID: "gcp-service-account-key", Description: "Google Cloud service account private key (JSON key file)", Severity: Critical,
		Keywords: kw(`"private_key"`), Validate: validPEM, Window: 8192, KeywordStart: true},
		`"private_key"\s*:\s*"(-----BEGIN [A-Z ]{0,20}PRIVATE KEY-----[^"]{64,}?-----END [A-Z ]{0,20}PRIVATE KEY-----)(?:\\n)*"`)
	add(&Rule{ID: "gcp-oauth-client-secret", Description: "Google OAuth client secret", Severity: High,
		Keywords: kw("gocspx-"), Entropy: 3.0},
		tok(`GOCSPX-[0-9A-Za-z_-]{28}`, endWord))
	add(&Rule{ID: "gcp-oauth-access-token", Description: "Google OAuth access token", Severity: Medium,
		Keywords: kw("ya29."), Entropy: 3.5},
		tok(`ya29\.[0-9A-Za-z_-]{30,}`, endWord))
	add(&Rule{ID: "azure-storage-key", Description: "Azure storage account key", Severity: Critical,
		Keywords: kw("accountkey", "azure", "storage"), Validate: validBase64Len(64), KeywordStart: true},
		`(?:(?i:AccountKey)\s*=\s*|(?i:azure|storage)[\w.-]{0,30}?(?i:key)`+quote+assignOp+quote+`)([A-Za-z0-9+/]{86}==)`+endB64)
	add(&Rule{ID: "azure-shared-access-key", Description: "Azure Service Bus / Event Hubs shared access key", Severity: High,
		Keywords: kw("sharedaccesskey"), Validate: validBase64Len(32), KeywordStart: true},
		`(?i:SharedAccessKey)\s*=\s*([A-Za-z0-9+/]{43}=)`+endB64)
	add(&Rule{ID: "azure-ad-client-secret", Description: "Microsoft Entra ID (Azure AD) client secret", Severity: High,
		Keywords: kw("q~"), Entropy: 3.0},
		`(?:^|[^\w~.-])([0-9A-Za-z_~.]{3}[0-9]Q~[0-9A-Za-z_~.-]{31,34})(?:[^\w~.-]|$)`)
	add(&Rule{ID: "alibaba-access-key-id", Description: "Alibaba Cloud AccessKey ID", Severity: High,
		Keywords: kw("ltai"), Entropy: 3.0},
		tok(`LTAI[0-9A-Za-z]{20}`, endAlnum))
	add(&Rule{ID: "digitalocean-token", Description: "DigitalOcean personal, OAuth or refresh token", Severity: Critical,
		Keywords: kw("dop_v1_", "doo_v1_", "dor_v1_")},
		tok(`do[opr]_v1_[0-9a-f]{64}`, endAlnum))
	ctx(&Rule{ID: "linode-token", Description: "Linode (Akamai) API token assigned to a Linode name", Severity: High, Entropy: 3.0},
		`[0-9a-f]{64}`, "linode")
	add(&Rule{ID: "heroku-api-key", Description: "Heroku API key (HRKU-)", Severity: High,
		Keywords: kw("hrku-"), Entropy: 3.0},
		tok(`HRKU-[0-9A-Za-z_-]{60}`, endWord))
	ctx(&Rule{ID: "heroku-api-key-legacy", Description: "Heroku API key (UUID) assigned to a Heroku name", Severity: High},
		`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`, "heroku")
	ctx(&Rule{ID: "vercel-token", Description: "Vercel access token assigned to a Vercel name", Severity: High, Entropy: 3.0, Validate: validMixed},
		`[0-9A-Za-z]{24}`, "vercel")
	add(&Rule{ID: "netlify-pat", Description: "Netlify personal access token (nfp_)", Severity: High,
		Keywords: kw("nfp_"), Entropy: 3.0},
		tok(`nfp_[0-9A-Za-z]{36}`, endAlnum))
	ctx(&Rule{ID: "netlify-token", Description: "Netlify access token assigned to a Netlify name", Severity: High, Entropy: 3.5, Validate: validMixed},
		`[0-9A-Za-z_-]{40,46}`, "netlify")
	ctx(&Rule{ID: "cloudflare-api-token", Description: "Cloudflare API token assigned to a Cloudflare name", Severity: High, Entropy: 3.5, Validate: validMixed},
		`[0-9A-Za-z_-]{40}`, "cloudflare", "cf_api", "cf_token")
	ctx(&Rule{ID: "cloudflare-global-api-key", Description: "Cloudflare global API key assigned to a Cloudflare name", Severity: Critical, Entropy: 3.0},
		`[0-9a-f]{37}`, "cloudflare", "cf_api", "cf_key")
	add(&Rule{ID: "cloudflare-origin-ca-key", Description: "Cloudflare Origin CA key", Severity: High,
		Keywords: kw("v1.0-")},
		tok(`v1\.0-[0-9a-f]{24}-[0-9a-f]{146}`, endAlnum))
	add(&Rule{ID: "fly-access-token", Description: "Fly.io access token (fo1_)", Severity: High,
		Keywords: kw("fo1_"), Entropy: 3.0},
		tok(`fo1_[0-9A-Za-z_-]{43}`, endWord))
	add(&Rule{ID: "render-api-key", Description: "Render API key (rnd_)", Severity: High,
		Keywords: kw("rnd_"), Entropy: 3.0},
		tok(`rnd_[0-9A-Za-z]{32}`, endAlnum))
	add(&Rule{ID: "supabase-token", Description: "Supabase personal access token (sbp_)", Severity: High,
		Keywords: kw("sbp_"), Entropy: 3.0},
		tok(`sbp_[0-9a-f]{40}`, endAlnum))
	add(&Rule{ID: "planetscale-token", Description: "PlanetScale service token, password or OAuth token", Severity: High,
		Keywords: kw("pscale_tkn_", "pscale_pw_", "pscale_oauth_"), Entropy: 3.0},
		tok(`pscale_(?:tkn|pw|oauth)_[0-9A-Za-z_.-]{32,64}`, endDot))
	add(&Rule{ID: "databricks-token", Description: "Databricks personal access token (dapi)", Severity: High,
		Keywords: kw("dapi"), Entropy: 3.0},
		tok(`dapi[0-9a-f]{32}(?:-[0-9])?`, endWord))
	add(&Rule{ID: "tailscale-key", Description: "Tailscale API, auth or OAuth client key", Severity: High,
		Keywords: kw("tskey-"), Entropy: 3.0},
		tok(`tskey-(?:api|auth|client|scim|webhook)-[0-9A-Za-z]{10,20}-[0-9A-Za-z]{20,40}`, endAlnum))

	// ---- source hosting and CI ----
	add(&Rule{ID: "github-pat", Description: "GitHub personal access token (ghp_)", Severity: Critical,
		Keywords: kw("ghp_"), Validate: validGitHubStyle},
		tok(`ghp_[0-9A-Za-z]{36}`, endAlnum))
	add(&Rule{ID: "github-oauth", Description: "GitHub OAuth access token (gho_)", Severity: Critical,
		Keywords: kw("gho_"), Validate: validGitHubStyle},
		tok(`gho_[0-9A-Za-z]{36}`, endAlnum))
	add(&Rule{ID: "github-app-token", Description: "GitHub App user-to-server or server-to-server token (ghu_, ghs_)", Severity: Critical,
		Keywords: kw("ghu_", "ghs_"), Validate: validGitHubStyle},
		tok(`gh[us]_[0-9A-Za-z]{36}`, endAlnum))
	add(&Rule{ID: "github-refresh-token", Description: "GitHub refresh token (ghr_)", Severity: High,
		Keywords: kw("ghr_"), Validate: validGitHubStyle},
		tok(`ghr_[0-9A-Za-z]{36}`, endAlnum))
	add(&Rule{ID: "github-fine-grained-pat", Description: "GitHub fine-grained personal access token", Severity: Critical,
		Keywords: kw("github_pat_"), Entropy: 3.5},
		tok(`github_pat_[0-9A-Za-z]{22}_[0-9A-Za-z]{59}`, endAlnum))
	add(&Rule{ID: "gitlab-pat", Description: "GitLab personal, project or group access token (glpat-)", Severity: Critical,
		Keywords: kw("glpat-"), Entropy: 3.0},
		tok(`glpat-[0-9A-Za-z_-]{20}(?:[0-9A-Za-z_-]{7,}\.[0-9a-z]{2}[0-9a-z]{7})?`, `(?:[^0-9A-Za-z_.-]|$)`))
	add(&Rule{ID: "gitlab-deploy-token", Description: "GitLab deploy token (gldt-)", Severity: High,
		Keywords: kw("gldt-"), Entropy: 3.0},
		tok(`gldt-[0-9A-Za-z_-]{20}`, endWord))
	add(&Rule{ID: "gitlab-runner-token", Description: "GitLab runner authentication token (glrt-)", Severity: High,
		Keywords: kw("glrt-"), Entropy: 3.0},
		tok(`glrt-[0-9A-Za-z_.-]{20,64}`, endDot))
	add(&Rule{ID: "gitlab-runner-registration-token", Description: "GitLab runner registration token (GR1348941)", Severity: High,
		Keywords: kw("gr1348941"), Entropy: 3.0},
		tok(`GR1348941[0-9A-Za-z_-]{20}`, endWord))
	add(&Rule{ID: "gitlab-pipeline-trigger-token", Description: "GitLab pipeline trigger token (glptt-)", Severity: High,
		Keywords: kw("glptt-"), Entropy: 3.0},
		tok(`glptt-[0-9a-f]{40}`, endAlnum))
	add(&Rule{ID: "gitlab-oauth-secret", Description: "GitLab OAuth application secret (gloas-)", Severity: High,
		Keywords: kw("gloas-"), Entropy: 3.0},
		tok(`gloas-[0-9a-f]{64}`, endAlnum))
	add(&Rule{ID: "bitbucket-app-password", Description: "Bitbucket app password (ATBB)", Severity: High,
		Keywords: kw("atbb"), Entropy: 3.0},
		tok(`ATBB[0-9A-Za-z_=.-]{32}`, `(?:[^0-9A-Za-z_=.-]|$)`))
	add(&Rule{ID: "bitbucket-access-token", Description: "Bitbucket repository, project or workspace access token (ATCTT3)", Severity: High,
		Keywords: kw("atctt3"), Entropy: 3.5},
		tok(`ATCTT3[0-9A-Za-z_=-]{150,}=[0-9A-F]{8}`, endAlnum))
	add(&Rule{ID: "atlassian-api-token", Description: "Atlassian API token (ATATT3)", Severity: High,
		Keywords: kw("atatt3"), Entropy: 3.5},
		tok(`ATATT3[0-9A-Za-z_=-]{150,}=[0-9A-F]{8}`, endAlnum))
	add(&Rule{ID: "buildkite-token", Description: "Buildkite API access token (bkua_)", Severity: High,
		Keywords: kw("bkua_"), Entropy: 3.0},
		tok(`bkua_[0-9a-f]{40}`, endAlnum))
	add(&Rule{ID: "sourcegraph-token", Description: "Sourcegraph access token (sgp_)", Severity: High,
		Keywords: kw("sgp_"), Entropy: 3.0},
		tok(`sgp_(?:[0-9a-fA-F]{16}|local)_[0-9a-f]{40}`, endAlnum))
	add(&Rule{ID: "sonarqube-token", Description: "SonarQube token (sqp_, squ_, sqa_)", Severity: Medium,
		Keywords: kw("sqp_", "squ_", "sqa_"), Entropy: 3.0},
		tok(`sq[pua]_[0-9a-f]{40}`, endAlnum))
	add(&Rule{ID: "terraform-cloud-token", Description: "Terraform Cloud / HCP Terraform API token (.atlasv1.)", Severity: Critical,
		Keywords: kw(".atlasv1."), Entropy: 3.5},
		tok(`[0-9A-Za-z]{14}\.atlasv1\.[0-9A-Za-z_=-]{60,70}`, `(?:[^0-9A-Za-z_=-]|$)`))
	add(&Rule{ID: "pulumi-access-token", Description: "Pulumi access token (pul-)", Severity: High,
		Keywords: kw("pul-"), Entropy: 3.0},
		tok(`pul-[0-9a-f]{40}`, endAlnum))
	add(&Rule{ID: "vault-service-token", Description: "HashiCorp Vault service token (hvs.)", Severity: Critical,
		Keywords: kw("hvs."), Entropy: 3.5},
		tok(`hvs\.[0-9A-Za-z_-]{90,120}`, endWord))
	add(&Rule{ID: "vault-batch-token", Description: "HashiCorp Vault batch token (hvb.)", Severity: High,
		Keywords: kw("hvb."), Entropy: 3.5},
		tok(`hvb\.[0-9A-Za-z_-]{138,}`, endWord))
	ctx(&Rule{ID: "vault-legacy-token", Description: "HashiCorp Vault token (s.) assigned to a Vault name", Severity: High, Entropy: 3.0},
		`s\.[0-9A-Za-z]{24}`, "vault")
	add(&Rule{ID: "doppler-token", Description: "Doppler token (dp.pt., dp.st., dp.sa., …)", Severity: High,
		Keywords: kw("dp.pt.", "dp.st.", "dp.sa.", "dp.ct.", "dp.scim.", "dp.audit."), Entropy: 3.5},
		tok(`dp\.(?:pt|st|sa|ct|scim|audit)\.[0-9A-Za-z]{40,44}`, endAlnum))
	add(&Rule{ID: "onepassword-service-account-token", Description: "1Password service account token (ops_)", Severity: Critical,
		Keywords: kw("ops_eyj"), Entropy: 4.0, Window: 2048},
		tok(`ops_eyJ[0-9A-Za-z+/=_-]{250,}`, `(?:[^0-9A-Za-z+/=_-]|$)`))

	// ---- package registries ----
	// npm's 2021 tokens carried a GitHub-style CRC32, but granular access
	// tokens (the only kind since legacy tokens were revoked) are not
	// documented to, so the checksum cannot be required.
	add(&Rule{ID: "npm-token", Description: "npm access token (npm_)", Severity: Critical,
		Keywords: kw("npm_"), Entropy: 3.5},
		tok(`npm_[0-9A-Za-z]{36}`, endAlnum))
	add(&Rule{ID: "npmrc-auth-token", Description: "registry token in an .npmrc (_authToken=)", Severity: High,
		Keywords: kw("_authtoken"), Entropy: 3.0, Validate: validMixed, Fallback: true, KeywordStart: true},
		`(?i:_authToken)\s*=\s*["']?([0-9A-Za-z_.+/=-]{16,})`+valueEnd)
	add(&Rule{ID: "pypi-token", Description: "PyPI API token", Severity: Critical,
		Keywords: kw("pypi-ageichlwas5vcmc", "pypi-agendgvzdc5wexbplm9yzw"), Window: 1024},
		tok(`pypi-(?:AgEIcHlwaS5vcmc|AgENdGVzdC5weXBpLm9yZw)[0-9A-Za-z_-]{50,}`, endWord))
	add(&Rule{ID: "rubygems-api-key", Description: "RubyGems API key (rubygems_)", Severity: High,
		Keywords: kw("rubygems_"), Entropy: 3.0},
		tok(`rubygems_[0-9a-f]{48}`, endAlnum))
	add(&Rule{ID: "nuget-api-key", Description: "NuGet API key (oy2)", Severity: High,
		Keywords: kw("oy2"), Entropy: 3.5},
		tok(`oy2[0-9a-z]{43}`, endAlnum))
	add(&Rule{ID: "dockerhub-token", Description: "Docker Hub personal or organization access token", Severity: High,
		Keywords: kw("dckr_pat_", "dckr_oat_"), Entropy: 3.0},
		tok(`dckr_(?:pat|oat)_[0-9A-Za-z_-]{27,32}`, endWord))
	add(&Rule{ID: "docker-config-auth", Description: "registry credentials in a Docker config.json (\"auth\": base64 user:password)", Severity: High,
		Keywords: kw(`"auth"`), Validate: validBasicAuth, KeywordStart: true},
		`"auth"\s*:\s*"([A-Za-z0-9+/]{8,}={0,2})"`)
	add(&Rule{ID: "clojars-token", Description: "Clojars deploy token", Severity: High,
		Keywords: kw("clojars_"), Entropy: 3.0},
		tok(`CLOJARS_[0-9a-z]{60}`, endAlnum))

	// ---- communication ----
	add(&Rule{ID: "slack-bot-token", Description: "Slack bot token (xoxb-)", Severity: High,
		Keywords: kw("xoxb-"), Entropy: 3.0},
		tok(`xoxb-[0-9]{8,14}-[0-9]{8,14}-[0-9A-Za-z]{24,34}`, endAlnum))
	add(&Rule{ID: "slack-user-token", Description: "Slack user token (xoxp-)", Severity: High,
		Keywords: kw("xoxp-"), Entropy: 3.0},
		tok(`xoxp-[0-9]{8,14}-[0-9]{8,14}-[0-9]{8,14}-[0-9A-Za-z]{28,34}`, endAlnum))
	add(&Rule{ID: "slack-app-token", Description: "Slack app-level token (xapp-)", Severity: High,
		Keywords: kw("xapp-"), Entropy: 3.0},
		tok(`xapp-[0-9]-[0-9A-Z]{9,12}-[0-9]{10,14}-[0-9a-f]{64}`, endAlnum))
	add(&Rule{ID: "slack-config-token", Description: "Slack configuration access token (xoxe.xoxp-, xoxe.xoxb-)", Severity: High,
		Keywords: kw("xoxe.xox"), Entropy: 3.5},
		tok(`xoxe\.xox[bp]-[0-9]-[0-9A-Za-z]{140,180}`, endAlnum))
	add(&Rule{ID: "slack-refresh-token", Description: "Slack configuration refresh token (xoxe-)", Severity: High,
		Keywords: kw("xoxe-"), Entropy: 3.5},
		tok(`xoxe-[0-9]-[0-9A-Za-z]{140,160}`, endAlnum))
	add(&Rule{ID: "slack-legacy-token", Description: "Slack legacy token (xoxa-, xoxr-, xoxo-, xoxs-)", Severity: High,
		Keywords: kw("xoxa-", "xoxr-", "xoxo-", "xoxs-"), Entropy: 3.0},
		tok(`xox[aros]-(?:[0-9]-)?[0-9A-Za-z]{8,48}(?:-[0-9A-Za-z]{1,64}){0,3}`, endAlnum))
	add(&Rule{ID: "slack-webhook", Description: "Slack incoming webhook URL", Severity: High,
		Keywords: kw("hooks.slack.com/"), Entropy: 3.0},
		`(?:https?://)?(hooks\.slack\.com/(?:services|workflows|triggers)/T[0-9A-Z]{6,12}/[0-9A-Z]{6,14}/[0-9A-Za-z/]{16,64})`+endAlnum)
	add(&Rule{ID: "discord-bot-token", Description: "Discord bot token near a Discord name", Severity: High,
		Keywords: kw("discord"), Entropy: 3.5, KeywordStart: true},
		`(?i:discord)[^\n]{0,64}?\b([MNO][0-9A-Za-z_-]{23,25}\.[0-9A-Za-z_-]{6}\.[0-9A-Za-z_-]{27,38})`+endWord)
	add(&Rule{ID: "discord-webhook", Description: "Discord webhook URL", Severity: High,
		Keywords: kw("discord.com/api/webhooks/", "discordapp.com/api/webhooks/"), Entropy: 3.0},
		`(https://(?:(?:canary|ptb)\.)?discord(?:app)?\.com/api/webhooks/[0-9]{17,20}/[0-9A-Za-z_-]{60,68})`+endWord)
	add(&Rule{ID: "telegram-bot-token", Description: "Telegram bot token", Severity: High,
		Keywords: kw(":aa"), Entropy: 3.0},
		tok(`[0-9]{8,10}:AA[0-9A-Za-z_-]{33}`, endWord))
	add(&Rule{ID: "twilio-api-key", Description: "Twilio API key SID (SK…)", Severity: High,
		Keywords: kw("sk"), Entropy: 3.0},
		tok(`SK[0-9a-f]{32}`, endAlnum))
	add(&Rule{ID: "twilio-account-credentials", Description: "Twilio account SID (AC…) with its auth token on the same line", Severity: High,
		Keywords: kw("ac"), Entropy: 3.0},
		leftBoundMark+`AC[0-9a-f]{32}[^0-9A-Za-z\n][^\n]{0,100}?\b([0-9a-f]{32})`+endAlnum)
	ctx(&Rule{ID: "twilio-auth-token", Description: "Twilio auth token assigned to a Twilio name", Severity: High, Entropy: 3.0},
		`[0-9a-f]{32}`, "twilio")
	add(&Rule{ID: "sendgrid-api-key", Description: "SendGrid API key (SG.)", Severity: High,
		Keywords: kw("sg."), Entropy: 3.5},
		tok(`SG\.[0-9A-Za-z_-]{22}\.[0-9A-Za-z_-]{43}`, endWord))
	add(&Rule{ID: "mailgun-api-key", Description: "Mailgun private API key (key-)", Severity: High,
		Keywords: kw("key-"), Entropy: 3.0},
		tok(`key-[0-9a-f]{32}`, endAlnum))
	add(&Rule{ID: "mailgun-private-key", Description: "Mailgun private API key (hex-hex-hex) near a Mailgun name", Severity: High,
		Keywords: kw("mailgun"), Entropy: 3.0, KeywordStart: true},
		`(?i:mailgun)[^\n]{0,64}?\b([0-9a-f]{32}-[0-9a-f]{8}-[0-9a-f]{8})`+endAlnum)
	add(&Rule{ID: "mailchimp-api-key", Description: "Mailchimp API key", Severity: High,
		Keywords: kw("-us"), Entropy: 3.0},
		tok(`[0-9a-f]{32}-us[0-9]{1,2}`, endAlnum))
	add(&Rule{ID: "postman-api-key", Description: "Postman API key (PMAK-)", Severity: High,
		Keywords: kw("pmak-"), Entropy: 3.0},
		tok(`PMAK-[0-9a-f]{24}-[0-9a-f]{34}`, endAlnum))
	add(&Rule{ID: "linear-api-key", Description: "Linear API key (lin_api_)", Severity: High,
		Keywords: kw("lin_api_"), Entropy: 3.0},
		tok(`lin_api_[0-9A-Za-z]{40}`, endAlnum))
	add(&Rule{ID: "notion-token", Description: "Notion integration token (ntn_)", Severity: High,
		Keywords: kw("ntn_"), Entropy: 3.0},
		tok(`ntn_[0-9]{11}[0-9A-Za-z]{35}`, endAlnum))
	add(&Rule{ID: "figma-token", Description: "Figma personal access token (figd_)", Severity: High,
		Keywords: kw("figd_"), Entropy: 3.0},
		tok(`figd_[0-9A-Za-z_-]{40}`, endWord))
	add(&Rule{ID: "twitter-bearer-token", Description: "Twitter/X app bearer token", Severity: High,
		Keywords: kw("aaaaaaaaaaaaaaaaaaaaaa"), Entropy: 3.0},
		tok(`A{22}[0-9A-Za-z%]{80,120}`, `(?:[^0-9A-Za-z%]|$)`))
	add(&Rule{ID: "facebook-access-token", Description: "Facebook (Meta) user access token", Severity: High,
		Keywords: kw("eaacedeose0cba"), Entropy: 3.0},
		tok(`EAACEdEose0cBA[0-9A-Za-z]{20,}`, endAlnum))
	ctx(&Rule{ID: "okta-api-token", Description: "Okta API token assigned to an Okta name", Severity: High, Entropy: 3.5},
		`00[0-9A-Za-z_-]{40}`, "okta")

	// ---- payments and commerce ----
	add(&Rule{ID: "stripe-secret-key", Description: "Stripe live secret key (sk_live_)", Severity: Critical,
		Keywords: kw("sk_live_"), Entropy: 3.0},
		tok(`sk_live_[0-9A-Za-z]{24,99}`, endAlnum))
	add(&Rule{ID: "stripe-restricted-key", Description: "Stripe live restricted key (rk_live_)", Severity: High,
		Keywords: kw("rk_live_"), Entropy: 3.0},
		tok(`rk_live_[0-9A-Za-z]{24,99}`, endAlnum))
	add(&Rule{ID: "stripe-test-key", Description: "Stripe test-mode secret or restricted key", Severity: Low,
		Keywords: kw("sk_test_", "rk_test_"), Entropy: 3.0},
		tok(`[sr]k_test_[0-9A-Za-z]{24,99}`, endAlnum))
	add(&Rule{ID: "stripe-webhook-secret", Description: "Stripe webhook signing secret (whsec_)", Severity: High,
		Keywords: kw("whsec_"), Entropy: 3.0},
		tok(`whsec_[0-9A-Za-z]{32,64}`, endAlnum))
	add(&Rule{ID: "braintree-access-token", Description: "PayPal Braintree production access token", Severity: Critical,
		Keywords: kw("access_token$production$"), Entropy: 3.0},
		tok(`access_token\$production\$[0-9a-z]{16}\$[0-9a-f]{32}`, endAlnum))
	add(&Rule{ID: "square-access-token", Description: "Square access token (sq0atp-)", Severity: High,
		Keywords: kw("sq0atp-"), Entropy: 3.0},
		tok(`sq0atp-[0-9A-Za-z_-]{22}`, endWord))
	add(&Rule{ID: "square-oauth-secret", Description: "Square OAuth application secret (sq0csp-)", Severity: High,
		Keywords: kw("sq0csp-"), Entropy: 3.0},
		tok(`sq0csp-[0-9A-Za-z_-]{43}`, endWord))
	add(&Rule{ID: "shopify-access-token", Description: "Shopify Admin API access token (shpat_)", Severity: Critical,
		Keywords: kw("shpat_"), Entropy: 3.0},
		tok(`shpat_[0-9a-fA-F]{32}`, endAlnum))
	add(&Rule{ID: "shopify-shared-secret", Description: "Shopify app shared secret (shpss_)", Severity: High,
		Keywords: kw("shpss_"), Entropy: 3.0},
		tok(`shpss_[0-9a-fA-F]{32}`, endAlnum))
	add(&Rule{ID: "shopify-custom-app-token", Description: "Shopify custom app access token (shpca_)", Severity: High,
		Keywords: kw("shpca_"), Entropy: 3.0},
		tok(`shpca_[0-9a-fA-F]{32}`, endAlnum))
	add(&Rule{ID: "shopify-private-app-token", Description: "Shopify private app access token (shppa_)", Severity: High,
		Keywords: kw("shppa_"), Entropy: 3.0},
		tok(`shppa_[0-9a-fA-F]{32}`, endAlnum))
	add(&Rule{ID: "shippo-api-token", Description: "Shippo API token", Severity: High,
		Keywords: kw("shippo_live_", "shippo_test_"), Entropy: 3.0},
		tok(`shippo_(?:live|test)_[0-9a-f]{40}`, endAlnum))
	add(&Rule{ID: "flutterwave-secret-key", Description: "Flutterwave secret key (FLWSECK-)", Severity: High,
		Keywords: kw("flwseck"), Entropy: 3.0},
		tok(`FLWSECK(?:_TEST)?-[0-9a-f]{32}-X`, endAlnum))
	add(&Rule{ID: "easypost-api-key", Description: "EasyPost API key (EZAK, EZTK)", Severity: High,
		Keywords: kw("ezak", "eztk"), Entropy: 3.5},
		tok(`EZ[AT]K[0-9A-Za-z]{54}`, endAlnum))

	// ---- AI and data ----
	add(&Rule{ID: "openai-api-key", Description: "OpenAI API key (sk-…T3BlbkFJ…)", Severity: Critical,
		Keywords: kw("t3blbkfj"), Entropy: 3.5},
		tok(`sk-(?:(?:proj|svcacct|admin)-)?[0-9A-Za-z_-]{20,}T3BlbkFJ[0-9A-Za-z_-]{20,}`, endWord))
	add(&Rule{ID: "anthropic-api-key", Description: "Anthropic API key (sk-ant-api03-)", Severity: Critical,
		Keywords: kw("sk-ant-api03-"), Entropy: 3.5},
		tok(`sk-ant-api03-[0-9A-Za-z_-]{93}AA`, endWord))
	add(&Rule{ID: "anthropic-admin-key", Description: "Anthropic Admin API key (sk-ant-admin01-)", Severity: Critical,
		Keywords: kw("sk-ant-admin01-"), Entropy: 3.5},
		tok(`sk-ant-admin01-[0-9A-Za-z_-]{93}AA`, endWord))
	add(&Rule{ID: "openrouter-api-key", Description: "OpenRouter API key (sk-or-v1-)", Severity: High,
		Keywords: kw("sk-or-v1-"), Entropy: 3.0},
		tok(`sk-or-v1-[0-9a-f]{64}`, endAlnum))
	add(&Rule{ID: "huggingface-token", Description: "Hugging Face access token (hf_)", Severity: High,
		Keywords: kw("hf_"), Entropy: 3.5},
		tok(`hf_[A-Za-z]{34}`, endAlnum))
	add(&Rule{ID: "huggingface-org-token", Description: "Hugging Face organization API token (api_org_)", Severity: High,
		Keywords: kw("api_org_"), Entropy: 3.5},
		tok(`api_org_[A-Za-z]{34}`, endAlnum))
	add(&Rule{ID: "groq-api-key", Description: "Groq API key (gsk_)", Severity: High,
		Keywords: kw("gsk_"), Entropy: 3.5},
		tok(`gsk_[0-9A-Za-z]{52}`, endAlnum))
	ctx(&Rule{ID: "cohere-api-key", Description: "Cohere API key assigned to a Cohere name", Severity: High, Entropy: 3.5, Validate: validMixed},
		`[0-9A-Za-z]{40}`, "cohere", "co_api_key")
	add(&Rule{ID: "replicate-api-token", Description: "Replicate API token (r8_)", Severity: High,
		Keywords: kw("r8_"), Entropy: 3.5},
		tok(`r8_[0-9A-Za-z]{37}`, endAlnum))
	add(&Rule{ID: "perplexity-api-key", Description: "Perplexity API key (pplx-)", Severity: High,
		Keywords: kw("pplx-"), Entropy: 3.5},
		tok(`pplx-[0-9A-Za-z]{48}`, endAlnum))
	add(&Rule{ID: "xai-api-key", Description: "xAI API key (xai-)", Severity: High,
		Keywords: kw("xai-"), Entropy: 3.5},
		tok(`xai-[0-9A-Za-z]{80}`, endAlnum))
	add(&Rule{ID: "langsmith-api-key", Description: "LangSmith API key (lsv2_)", Severity: High,
		Keywords: kw("lsv2_pt_", "lsv2_sk_"), Entropy: 3.0},
		tok(`lsv2_(?:pt|sk)_[0-9a-f]{32}_[0-9a-f]{10}`, endAlnum))
	add(&Rule{ID: "prefect-api-key", Description: "Prefect API key (pnu_)", Severity: High,
		Keywords: kw("pnu_"), Entropy: 3.0},
		tok(`pnu_[0-9A-Za-z]{36}`, endAlnum))
	add(&Rule{ID: "mapbox-secret-token", Description: "Mapbox secret access token (sk.eyJ)", Severity: High,
		Keywords: kw("sk.eyj"), Entropy: 3.5},
		tok(`sk\.eyJ[0-9A-Za-z_-]{50,}\.[0-9A-Za-z_-]{20,100}`, endWord))

	// ---- observability ----
	ctx(&Rule{ID: "datadog-api-key", Description: "Datadog API key assigned to a Datadog name", Severity: High, Entropy: 3.0},
		`[0-9a-f]{32}`, "datadog", "dd_api")
	ctx(&Rule{ID: "datadog-app-key", Description: "Datadog application key assigned to a Datadog name", Severity: High, Entropy: 3.0},
		`[0-9a-f]{40}`, "datadog", "dd_app")
	add(&Rule{ID: "newrelic-user-key", Description: "New Relic user API key (NRAK-)", Severity: High,
		Keywords: kw("nrak-"), Entropy: 3.0},
		tok(`NRAK-[0-9A-Z]{27}`, endAlnum))
	add(&Rule{ID: "newrelic-insert-key", Description: "New Relic insert key (NRII-)", Severity: High,
		Keywords: kw("nrii-"), Entropy: 3.0},
		tok(`NRII-[0-9A-Za-z_-]{32}`, endWord))
	add(&Rule{ID: "newrelic-license-key", Description: "New Relic ingest license key (…NRAL)", Severity: High,
		Keywords: kw("nral"), Entropy: 3.0},
		tok(`[0-9a-f]{36}NRAL`, endAlnum))
	add(&Rule{ID: "sentry-org-token", Description: "Sentry organization auth token (sntrys_)", Severity: High,
		Keywords: kw("sntrys_"), Entropy: 3.5, Window: 1024},
		tok(`sntrys_eyJ[0-9A-Za-z+/=_-]{60,}`, `(?:[^0-9A-Za-z+/=_-]|$)`))
	add(&Rule{ID: "sentry-user-token", Description: "Sentry user auth token (sntryu_)", Severity: High,
		Keywords: kw("sntryu_"), Entropy: 3.0},
		tok(`sntryu_[0-9a-f]{64}`, endAlnum))
	add(&Rule{ID: "sentry-dsn", Description: "Sentry DSN (a client key; with a secret part on old DSNs)", Severity: Low,
		Keywords: kw("sentry.io/"), Entropy: 3.0},
		`\b(https://[0-9a-f]{32}(?::[0-9a-f]{32})?@[0-9A-Za-z.-]*sentry\.io/[0-9]+)`+endAlnum)
	add(&Rule{ID: "dynatrace-token", Description: "Dynatrace API token (dt0c01.)", Severity: High,
		Keywords: kw("dt0c01."), Entropy: 3.0},
		tok(`dt0c01\.[0-9A-Z]{24}\.[0-9A-Z]{64}`, endAlnum))
	add(&Rule{ID: "grafana-cloud-token", Description: "Grafana Cloud access policy token (glc_)", Severity: High,
		Keywords: kw("glc_"), Entropy: 3.5},
		tok(`glc_[A-Za-z0-9+/]{32,}={0,2}`, endB64))
	add(&Rule{ID: "grafana-service-account-token", Description: "Grafana service account token (glsa_)", Severity: High,
		Keywords: kw("glsa_"), Entropy: 3.0},
		tok(`glsa_[0-9A-Za-z]{32}_[0-9a-fA-F]{8}`, endAlnum))

	// ---- keys, tokens and URLs without a provider ----
	add(&Rule{ID: "age-secret-key", Description: "age X25519 identity (AGE-SECRET-KEY-1)", Severity: Critical,
		Keywords: kw("age-secret-key-1"), Validate: validAge},
		tok(`AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}`, endAlnum))
	add(&Rule{ID: "private-key", Description: "private key (PEM, OpenSSH, PGP)", Severity: Critical,
		Keywords: kw("-----begin "), Validate: validPEM, KeywordStart: true,
		MultiLine: true, Window: 16384, Fallback: true, SecretGroup: 0},
		`-----BEGIN (?:RSA |EC |DSA |OPENSSH |PGP |SSH2 )?PRIVATE KEY(?: BLOCK)?-----(?s:.){64,}?-----END (?:RSA |EC |DSA |OPENSSH |PGP |SSH2 )?PRIVATE KEY(?: BLOCK)?-----`)
	add(&Rule{ID: "encrypted-private-key", Description: "passphrase-encrypted private key (PEM)", Severity: Low,
		Keywords: kw("-----begin "), Validate: validPEM, KeywordStart: true,
		MultiLine: true, Window: 16384, Fallback: true},
		`-----BEGIN (?:SSH2 )?ENCRYPTED PRIVATE KEY-----(?s:.){64,}?-----END (?:SSH2 )?ENCRYPTED PRIVATE KEY-----`)
	add(&Rule{ID: "jwt", Description: "JSON Web Token", Severity: Medium,
		Keywords: kw("eyj"), Validate: validJWT, Window: 4096},
		tok(`ey[0-9A-Za-z_-]{10,}\.ey[0-9A-Za-z_-]{10,}\.[0-9A-Za-z_-]*`, endWord))
	dbURL := func(id, desc, schemes string, keywords ...string) {
		add(&Rule{ID: id, Description: desc, Severity: High, Keywords: keywords,
			Validate: validURLPassword, SecretGroup: 2, KeywordStart: true},
			leftBoundMark+`(?i:`+schemes+`)://([^:/?#\s@"'<>]{0,64}):([^@/?#\s"'<>]{3,128})@[0-9A-Za-z.\[\]_-]+`)
	}
	dbURL("postgres-url-password", "PostgreSQL connection URL with a password",
		`(?:postgres(?:ql)?|pgsql)(?:\+[a-z0-9]+)?`, "postgres://", "postgresql://", "postgres+", "postgresql+", "pgsql://")
	dbURL("mysql-url-password", "MySQL / MariaDB connection URL with a password",
		`(?:mysql|mysqlx|mariadb)(?:\+[a-z0-9]+)?`, "mysql://", "mysqlx://", "mysql+", "mariadb://", "mariadb+")
	dbURL("mongodb-url-password", "MongoDB connection URL with a password",
		`mongodb(?:\+srv)?`, "mongodb://", "mongodb+srv://")
	dbURL("redis-url-password", "Redis connection URL with a password",
		`rediss?`, "redis://", "rediss://")
	dbURL("amqp-url-password", "AMQP (RabbitMQ) connection URL with a password",
		`amqps?`, "amqp://", "amqps://")
	add(&Rule{ID: "url-basic-auth", Description: "URL with a password in its user info", Severity: Medium,
		Keywords: kw("://"), Validate: validURLPassword, SecretGroup: 2, Fallback: true},
		`://([^:/?#\s@"'<>]{1,64}):([^@/?#\s"'<>]{3,128})@[0-9A-Za-z.\[\]_-]+`)
	add(&Rule{ID: "authorization-bearer", Description: "bearer token in an Authorization header", Severity: Medium,
		Keywords: kw("bearer"), Entropy: 3.5, Validate: validMixed, Fallback: true, KeywordStart: true},
		leftBoundMark+`(?i:bearer)\s+([0-9A-Za-z._~+/-]{20,}=*)`+`(?:[^0-9A-Za-z._~+/=-]|$)`)
	add(&Rule{ID: "authorization-basic", Description: "credentials in an HTTP Basic Authorization header", Severity: Medium,
		Keywords: kw("authorization"), Validate: validBasicAuth, Fallback: true, KeywordStart: true},
		`(?i:authorization)["']?\s*[:=]\s*["']?(?i:basic)\s+([A-Za-z0-9+/]{8,}={0,2})`+endB64)
	add(&Rule{ID: "generic-password", Description: "password assigned in code or configuration", Severity: Medium,
		Keywords: kw("password", "passwd", "passphrase", "pwd"), Validate: validPassword, Fallback: true, quotedInCode: true, KeywordStart: true,
		allowName: genericNameAllowed},
		`(?i:password|passwd|passphrase|pwd)[\w.-]{0,16}?`+quote+assignOp+
			`(?:"([^"\s]{6,128})"|'([^'\s]{6,128})'|`+"`([^`\\s]{6,128})`"+`|([^\s"'`+"`"+`;,<>&]{6,128})(?:[\s;,<&]|\\[nr]|$))`)
	ctx(&Rule{ID: "generic-secret", Description: "high-entropy value assigned to a secret-looking name", Severity: Medium,
		Entropy: 3.5, Validate: validGeneric, Fallback: true, quotedInCode: true,
		allowName: genericNameAllowed},
		`[0-9A-Za-z_.+/~=-]{16,}`, "secret", "token", "api_key", "access_key", "auth_key", "credential", "creds", "private_key", "signing_key", "encryption_key", "master_key")
	return rs
})

// nonSecretSuffixes end names that hold something other than a secret:
// digests, identifiers, URLs, sizes, types, formats, UI text, settings.
var nonSecretSuffixes = []string{
	"hash", "digest", "checksum", "sha", "sha1", "sha256", "sha512", "md5", "crc", "crc32",
	"_id", "id", "uuid", "url", "uri", "endpoint", "host", "type", "name", "file", "path", "dir",
	"len", "length", "size", "count", "format", "pattern", "regex", "header", "prefix",
	"suffix", "field", "param", "version", "ttl", "expiry", "expires", "expiration",
	"timeout", "policy", "algorithm", "algo", "method", "mode", "scheme", "encryption",
	"strength", "rules", "validation", "required", "enabled", "label", "prompt", "hint",
	"placeholder", "message", "msg", "text", "title", "error",
}

// nonSecretTokens are tokens that are not credentials (pagination cursors,
// CSRF tokens sent to every browser).
var nonSecretTokens = []string{"csrf", "xsrf", "page", "cursor", "continuation", "next", "sync", "resume"}

// genericNameAllowed reports whether an assignment to name (the identifier
// before the operator, any case) is known not to hold a secret.
func genericNameAllowed(name []byte) bool {
	n := strings.ToLower(strings.Trim(string(name), `"'`+"`"))
	for _, suf := range nonSecretSuffixes {
		if strings.HasSuffix(n, suf) {
			return true
		}
	}
	if base, ok := strings.CutSuffix(n, "token"); ok {
		base = strings.TrimRight(base, "_.-")
		for _, w := range nonSecretTokens {
			if strings.HasSuffix(base, w) {
				return true
			}
		}
	}
	return false
}
