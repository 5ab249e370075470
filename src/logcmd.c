/*
 * logcmd.c - `sovgate log ...`: query, verify, export, prune, find-value
 * over the decision log (SPEC §2, §7, §8).
 *
 * Everything here runs in the CLI process on its own SQLite connection:
 * read-only except for prune. The gateway may be writing at the same time
 * (WAL: readers never block it; prune takes the write lock briefly).
 *
 * Output formats of query and find-value:
 *   table  aligned columns for people, then "(N decisions)";
 *   json   one JSON array of decision objects (one object per line), the
 *          same objects `log export` writes as JSON lines;
 *   csv    RFC 4180: a header row, CRLF line ends, fields quoted when they
 *          hold a comma, quote, CR or LF. A text field starting with = + -
 *          @ TAB or CR gets a leading apostrophe so that a spreadsheet does
 *          not run a client-supplied value as a formula.
 * Exit codes: 0 ok, 1 verify found a broken chain (or prune refused to
 * delete an unverifiable log), 2 usage or runtime error.
 */
#include "logcmd.h"
#include "classify.h"
#include "diag.h"
#include "dlog.h"
#include "snapshot.h"
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <sqlite3.h>

enum fmt { FMT_TABLE, FMT_JSON, FMT_CSV, FMT_JSONL };

#define MAX_HMACS 16

struct qopts {
	int64_t since, until;
	int has_since, has_until;
	const char *client, *backend, *level, *action, *type, *country,
	    *decision;
	char country_up[3];
	enum fmt fmt;
	long limit;		/* 0: all */
	/* find-value: decisions with one of these fingerprints */
	char hmacs[MAX_HMACS][65];
	size_t nhmacs;
	int by_hmac;
};

static void
usage_log(FILE *out)
{
	fprintf(out,
	    "usage: sovgate log COMMAND [OPTIONS]\n"
	    "\n"
	    "  query [FILTERS] [--format table|json|csv] [--limit N]\n"
	    "      --since T, --until T     RFC 3339 (2026-11-28T09:00:00Z, "
	    "2026-11-28)\n"
	    "                               or relative (-24h, -7d, -30m)\n"
	    "      --client NAME            --backend NAME (chosen, attempted or "
	    "answering)\n"
	    "      --level LEVEL            --action allow|deny|error\n"
	    "      --type TYPE              a finding type (iban, "
	    "national_id.fr_nir)\n"
	    "                               or a category (national_id)\n"
	    "      --operator-country CC    the chosen backend's operator or "
	    "its parent is in CC\n"
	    "      --decision ID            a decision id (or a prefix of at "
	    "least 8 characters)\n"
	    "  verify                       check the hash chains; exit 1 naming "
	    "the first bad row\n"
	    "  export [--since T] [--until T]  JSON lines (decisions and events) "
	    "for a SIEM\n"
	    "  prune --before T             delete older rows, keeping the chain "
	    "verifiable\n"
	    "  find-value VALUE [--key FILE] [--format table|json|csv]\n"
	    "                               decisions whose request held this "
	    "exact value\n");
}

static int
usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "sovgate log %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n(run 'sovgate log --help' for the options)\n");
	return 2;
}

/* A SQLite failure while reading or writing the log, as advice. */
static int
db_error(const char *cmd, sqlite3 *db, const char *path)
{
	int rc = sqlite3_errcode(db);

	switch (rc) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		fprintf(stderr, "sovgate log %s: %s is locked by another process "
		    "(%s); try again in a moment\n", cmd, path,
		    sqlite3_errmsg(db));
		break;
	case SQLITE_NOTADB:
	case SQLITE_CORRUPT:
		fprintf(stderr, "sovgate log %s: %s is corrupt (%s); restore it "
		    "from a backup\n", cmd, path, sqlite3_errmsg(db));
		break;
	default:
		fprintf(stderr, "sovgate log %s: %s: %s\n", cmd, path,
		    sqlite3_errmsg(db));
	}
	return 2;
}

static sqlite3 *
open_log(const char *cmd, const char *path, int rw)
{
	char err[512];
	struct stat st;
	sqlite3 *db;

	/* Writing opens must not create a log where there is none. */
	if (path == NULL || stat(path, &st) != 0) {
		fprintf(stderr, "sovgate log %s: no decision log at %s (%s); "
		    "check log.database in the config, or start the gateway "
		    "once to create it\n", cmd, path ? path : "(none)",
		    path ? strerror(errno) : "no path");
		return NULL;
	}
	db = dlog_open_db(path, rw, err, sizeof(err));
	if (db == NULL)
		fprintf(stderr, "sovgate log %s: %s\n", cmd, err);
	return db;
}

/* ---- option parsing ---- */

/* "--name value" or "--name=value"; returns the value and advances *i, or
 * NULL when argv[*i] is not this option. *missing is set when it is but
 * has no value. */
static const char *
opt_value(int argc, char **argv, int *i, const char *name, int *missing)
{
	size_t n = strlen(name);
	const char *a = argv[*i];

	if (strncmp(a, name, n) != 0)
		return NULL;
	if (a[n] == '=')
		return a + n + 1;
	if (a[n] != '\0')
		return NULL;
	if (*i + 1 >= argc) {
		*missing = 1;
		return NULL;
	}
	return argv[++*i];
}

static int
valid_name(const char *s, const char *extra)
{
	const char *p;

	if (*s == '\0' || strlen(s) > 200)
		return 0;
	for (p = s; *p; p++)
		if (!isalnum((unsigned char)*p) && strchr(extra, *p) == NULL)
			return 0;
	return 1;
}

static int
set_once(const char *cmd, const char **slot, const char *opt, const char *v)
{
	if (*slot != NULL)
		return usage_error(cmd, "%s given twice; give it once", opt);
	*slot = v;
	return 0;
}

static int
parse_time_opt(const char *cmd, const char *opt, const char *v, int64_t *out)
{
	if (parse_time_arg(v, out) != 0)
		return usage_error(cmd, "%s '%s' is not a time: use RFC 3339 "
		    "(2026-11-28T09:00:00Z, 2026-11-28) or a relative time "
		    "(-24h, -7d, -30m)", opt, v);
	return 0;
}

/* Parse the options of query, export and find-value. allow_filters: the
 * query filters; rest receives the first positional argument (find-value),
 * key the --key option. 0, or an exit code. */
static int
parse_query_opts(const char *cmd, int argc, char **argv, struct qopts *q,
    int allow_filters, const char **rest, const char **key)
{
	int i;

	for (i = 1; i < argc; i++) {
		int missing = 0, rc = 0;
		const char *v;

#define OPT(name) ((v = opt_value(argc, argv, &i, name, &missing)) != NULL || \
	    missing)
		if (strcmp(argv[i], "--") == 0 && rest != NULL && *rest == NULL &&
		    i + 1 < argc) {
			/* a value that starts with '-' */
			*rest = argv[++i];
			continue;
		}
		if (OPT("--since")) {
			if (missing)
				goto miss;
			if (parse_time_opt(cmd, "--since", v, &q->since))
				return 2;
			q->has_since = 1;
		} else if (OPT("--until")) {
			if (missing)
				goto miss;
			if (parse_time_opt(cmd, "--until", v, &q->until))
				return 2;
			q->has_until = 1;
		} else if (OPT("--format")) {
			if (missing)
				goto miss;
			if (strcmp(v, "table") == 0)
				q->fmt = FMT_TABLE;
			else if (strcmp(v, "json") == 0)
				q->fmt = FMT_JSON;
			else if (strcmp(v, "csv") == 0)
				q->fmt = FMT_CSV;
			else
				return usage_error(cmd, "--format '%s' is not one "
				    "of table, json, csv", v);
		} else if (key != NULL && OPT("--key")) {
			if (missing)
				goto miss;
			*key = v;
		} else if (allow_filters && OPT("--limit")) {
			char *end;

			if (missing)
				goto miss;
			errno = 0;
			q->limit = strtol(v, &end, 10);
			if (errno || *end || end == v || q->limit <= 0)
				return usage_error(cmd, "--limit '%s' is not a "
				    "positive number", v);
		} else if (allow_filters && OPT("--client")) {
			if (missing)
				goto miss;
			if (!valid_name(v, "-_.@:/"))
				return usage_error(cmd, "--client '%s' is not a "
				    "client name", v);
			rc = set_once(cmd, &q->client, "--client", v);
		} else if (allow_filters && OPT("--backend")) {
			if (missing)
				goto miss;
			if (!valid_name(v, "-_.:/"))
				return usage_error(cmd, "--backend '%s' is not a "
				    "backend name", v);
			rc = set_once(cmd, &q->backend, "--backend", v);
		} else if (allow_filters && OPT("--level")) {
			if (missing)
				goto miss;
			if (!valid_name(v, "-_."))
				return usage_error(cmd, "--level '%s' is not a "
				    "level name (letters, digits, - _ .)", v);
			rc = set_once(cmd, &q->level, "--level", v);
		} else if (allow_filters && OPT("--action")) {
			if (missing)
				goto miss;
			if (strcmp(v, "allow") != 0 && strcmp(v, "deny") != 0 &&
			    strcmp(v, "error") != 0)
				return usage_error(cmd, "--action '%s' is not one "
				    "of allow, deny, error", v);
			rc = set_once(cmd, &q->action, "--action", v);
		} else if (allow_filters && OPT("--type")) {
			const char *p;

			if (missing)
				goto miss;
			for (p = v; *p; p++)
				if (!islower((unsigned char)*p) &&
				    !isdigit((unsigned char)*p) && *p != '_' &&
				    *p != '.' && *p != '-')
					break;
			if (*v == '\0' || *p || v[strlen(v) - 1] == '.')
				return usage_error(cmd, "--type '%s' is not a "
				    "finding type: use a type such as iban or "
				    "national_id.fr_nir, or a category such as "
				    "national_id", v);
			rc = set_once(cmd, &q->type, "--type", v);
		} else if (allow_filters && OPT("--operator-country")) {
			if (missing)
				goto miss;
			if (strlen(v) != 2 || !isalpha((unsigned char)v[0]) ||
			    !isalpha((unsigned char)v[1]))
				return usage_error(cmd, "--operator-country '%s' "
				    "is not an ISO 3166-1 alpha-2 country code "
				    "(like US, FR)", v);
			q->country_up[0] = (char)toupper((unsigned char)v[0]);
			q->country_up[1] = (char)toupper((unsigned char)v[1]);
			q->country_up[2] = '\0';
			rc = set_once(cmd, &q->country, "--operator-country", v);
		} else if (allow_filters && OPT("--decision")) {
			const char *p;

			if (missing)
				goto miss;
			for (p = v; *p; p++)
				if (!isxdigit((unsigned char)*p) && *p != '-')
					break;
			if (*p || strlen(v) < 8 || strlen(v) > 36)
				return usage_error(cmd, "--decision '%s' is not a "
				    "decision id (a UUID, or its first 8 or more "
				    "characters)", v);
			rc = set_once(cmd, &q->decision, "--decision", v);
		} else if (argv[i][0] == '-' && argv[i][1] != '\0') {
			return usage_error(cmd, "unknown option '%s'", argv[i]);
		} else if (rest != NULL && *rest == NULL) {
			*rest = argv[i];
		} else {
			return usage_error(cmd, "unexpected argument '%s'",
			    argv[i]);
		}
		if (rc)
			return rc;
		continue;
miss:
		return usage_error(cmd, "%s needs a value", argv[i]);
#undef OPT
	}
	if (q->has_since && q->has_until && q->until <= q->since)
		return usage_error(cmd, "--until is not after --since: nothing "
		    "can match");
	return 0;
}

/* ---- the query ---- */

static const char select_cols[] =
    "SELECT d.seq, d.id, d.ts_ms, d.client, d.endpoint, d.model, "
    "d.findings_json, d.declared_level, d.level, d.level_rule, "
    "d.policy_name, d.policy_sha256, d.action, d.reason, d.candidates_json, "
    "d.backend, d.backend_facts_json, d.cloud_act, d.shadow_json, "
    "d.row_hash, o.status, o.attempts, o.attempts_json, o.backend, "
    "o.latency_ms, o.ttfb_ms, o.bytes_in, o.bytes_out, o.prompt_tokens, "
    "o.completion_tokens, o.total_tokens, o.error, o.seq "
    "FROM decisions d LEFT JOIN outcomes o ON o.seq = "
    "(SELECT max(x.seq) FROM outcomes x WHERE x.decision_id = d.id)";
enum {
	C_SEQ, C_ID, C_TS, C_CLIENT, C_ENDPOINT, C_MODEL, C_FINDINGS,
	C_DECLARED, C_LEVEL, C_RULE, C_POLICY, C_POLICY_SHA, C_ACTION,
	C_REASON, C_CANDIDATES, C_BACKEND, C_FACTS, C_CLOUD_ACT, C_SHADOW,
	C_ROW_HASH, C_STATUS, C_ATTEMPTS, C_ATTEMPTS_JSON, C_ANSWERED,
	C_LATENCY, C_TTFB, C_BYTES_IN, C_BYTES_OUT, C_PTOK, C_CTOK, C_TTOK,
	C_ERROR, C_OSEQ
};

struct sqlbuf {
	char *s;
	size_t len, cap;
	int nparams;
};

static void
sql_add(struct sqlbuf *b, const char *s)
{
	size_t n = strlen(s);

	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		b->s = xrealloc(b->s, b->cap);
	}
	memcpy(b->s + b->len, s, n + 1);
	b->len += n;
}

/* Build the WHERE clause; parameters are numbered in the order given. */
static char *
build_query(const struct qopts *q)
{
	struct sqlbuf b = { 0 };
	const char *and = " WHERE ";
	char tmp[256];
	size_t i;

	sql_add(&b, select_cols);
#define COND(...) do { snprintf(tmp, sizeof(tmp), __VA_ARGS__); \
	sql_add(&b, and); sql_add(&b, tmp); and = " AND "; } while (0)
	if (q->has_since)
		COND("d.ts_ms >= ?%d", ++b.nparams);
	if (q->has_until)
		COND("d.ts_ms < ?%d", ++b.nparams);
	if (q->client)
		COND("d.client = ?%d", ++b.nparams);
	if (q->backend) {
		++b.nparams;
		COND("(d.backend = ?%d OR o.backend = ?%d OR EXISTS (SELECT 1 "
		    "FROM json_each(CASE WHEN json_valid(o.attempts_json) THEN "
		    "o.attempts_json ELSE '[]' END) a WHERE json_extract(a.value,"
		    " '$.backend') = ?%d))", b.nparams, b.nparams, b.nparams);
	}
	if (q->level)
		COND("d.level = ?%d", ++b.nparams);
	if (q->action)
		COND("d.action = ?%d", ++b.nparams);
	if (q->type) {
		++b.nparams;
		/* a full type, or a category: "national_id" matches
		 * "national_id.fr_nir" (no LIKE: '_' is a wildcard there) */
		COND("EXISTS (SELECT 1 FROM json_each(CASE WHEN json_valid("
		    "d.findings_json) THEN d.findings_json ELSE '{}' END) f "
		    "WHERE f.key = ?%d OR substr(f.key, 1, length(?%d) + 1) = "
		    "?%d || '.')", b.nparams, b.nparams, b.nparams);
	}
	if (q->country) {
		++b.nparams;
		COND("(CASE WHEN json_valid(d.backend_facts_json) THEN "
		    "json_extract(d.backend_facts_json, '$.operator_country') "
		    "END = ?%d OR CASE WHEN json_valid(d.backend_facts_json) "
		    "THEN json_extract(d.backend_facts_json, '$.parent_country') "
		    "END = ?%d)", b.nparams, b.nparams);
	}
	if (q->decision) {
		++b.nparams;
		COND("(d.id = ?%d OR substr(d.id, 1, length(?%d)) = ?%d)",
		    b.nparams, b.nparams, b.nparams);
	}
	if (q->by_hmac) {
		sql_add(&b, and);
		sql_add(&b, "d.id IN (SELECT decision_id FROM fingerprints WHERE "
		    "hmac IN (");
		for (i = 0; i < q->nhmacs; i++) {
			snprintf(tmp, sizeof(tmp), "%s?%d", i ? ", " : "",
			    ++b.nparams);
			sql_add(&b, tmp);
		}
		if (q->nhmacs == 0)
			sql_add(&b, "NULL");
		sql_add(&b, "))");
		and = " AND ";
	}
#undef COND
	if (q->limit > 0) {
		/* the newest N, shown oldest first */
		snprintf(tmp, sizeof(tmp), " ORDER BY d.seq DESC LIMIT %ld",
		    q->limit);
		sql_add(&b, tmp);
		{
			char *inner = b.s;

			b.s = xasprintf("SELECT * FROM (%s) ORDER BY 1", inner);
			free(inner);
		}
	} else {
		sql_add(&b, " ORDER BY d.seq");
	}
	return b.s;
}

static void
bind_query(sqlite3_stmt *st, const struct qopts *q)
{
	int n = 0;
	size_t i;

	if (q->has_since)
		sqlite3_bind_int64(st, ++n, q->since);
	if (q->has_until)
		sqlite3_bind_int64(st, ++n, q->until);
	if (q->client)
		sqlite3_bind_text(st, ++n, q->client, -1, SQLITE_STATIC);
	if (q->backend)
		sqlite3_bind_text(st, ++n, q->backend, -1, SQLITE_STATIC);
	if (q->level)
		sqlite3_bind_text(st, ++n, q->level, -1, SQLITE_STATIC);
	if (q->action)
		sqlite3_bind_text(st, ++n, q->action, -1, SQLITE_STATIC);
	if (q->type)
		sqlite3_bind_text(st, ++n, q->type, -1, SQLITE_STATIC);
	if (q->country)
		sqlite3_bind_text(st, ++n, q->country_up, -1, SQLITE_STATIC);
	if (q->decision)
		sqlite3_bind_text(st, ++n, q->decision, -1, SQLITE_STATIC);
	if (q->by_hmac)
		for (i = 0; i < q->nhmacs; i++)
			sqlite3_bind_text(st, ++n, q->hmacs[i], -1,
			    SQLITE_STATIC);
}

/* ---- row rendering ---- */

static const char *
col_text(sqlite3_stmt *st, int i)
{
	return (const char *)sqlite3_column_text(st, i);
}

static json_t *
j_text(sqlite3_stmt *st, int i)
{
	const char *s = col_text(st, i);

	return s ? json_string(s) : json_null();
}

static json_t *
j_int(sqlite3_stmt *st, int i)
{
	return sqlite3_column_type(st, i) == SQLITE_NULL ? json_null() :
	    json_integer(sqlite3_column_int64(st, i));
}

/* A JSON column nested as JSON; kept as a string if it does not parse. */
static json_t *
j_json(sqlite3_stmt *st, int i)
{
	const char *s = col_text(st, i);
	json_t *v;

	if (s == NULL)
		return json_null();
	v = json_loads(s, JSON_DECODE_ANY, NULL);
	return v ? v : json_string(s);
}

static json_t *
row_json(sqlite3_stmt *st)
{
	json_t *o = json_object(), *out;
	char ts[32];

	fmt_rfc3339_ms(sqlite3_column_int64(st, C_TS), ts, sizeof(ts));
	json_object_set_new(o, "record", json_string("decision"));
	json_object_set_new(o, "seq", j_int(st, C_SEQ));
	json_object_set_new(o, "decision_id", j_text(st, C_ID));
	json_object_set_new(o, "ts", json_string(ts));
	json_object_set_new(o, "ts_ms", j_int(st, C_TS));
	json_object_set_new(o, "client", j_text(st, C_CLIENT));
	json_object_set_new(o, "endpoint", j_text(st, C_ENDPOINT));
	json_object_set_new(o, "model", j_text(st, C_MODEL));
	json_object_set_new(o, "findings", j_json(st, C_FINDINGS));
	json_object_set_new(o, "declared_level", j_text(st, C_DECLARED));
	json_object_set_new(o, "level", j_text(st, C_LEVEL));
	json_object_set_new(o, "level_rule", j_text(st, C_RULE));
	json_object_set_new(o, "policy_name", j_text(st, C_POLICY));
	json_object_set_new(o, "policy_sha256", j_text(st, C_POLICY_SHA));
	json_object_set_new(o, "action", j_text(st, C_ACTION));
	json_object_set_new(o, "reason", j_text(st, C_REASON));
	json_object_set_new(o, "candidates", j_json(st, C_CANDIDATES));
	json_object_set_new(o, "backend", j_text(st, C_BACKEND));
	json_object_set_new(o, "backend_facts", j_json(st, C_FACTS));
	json_object_set_new(o, "cloud_act", json_boolean(
	    sqlite3_column_int(st, C_CLOUD_ACT)));
	json_object_set_new(o, "shadow", j_json(st, C_SHADOW));
	json_object_set_new(o, "row_hash", j_text(st, C_ROW_HASH));
	if (sqlite3_column_type(st, C_OSEQ) == SQLITE_NULL) {
		out = json_null();
	} else {
		out = json_object();
		json_object_set_new(out, "status", j_int(st, C_STATUS));
		json_object_set_new(out, "attempts", j_int(st, C_ATTEMPTS));
		json_object_set_new(out, "attempt_list", j_json(st,
		    C_ATTEMPTS_JSON));
		json_object_set_new(out, "backend", j_text(st, C_ANSWERED));
		json_object_set_new(out, "latency_ms", j_int(st, C_LATENCY));
		json_object_set_new(out, "ttfb_ms", j_int(st, C_TTFB));
		json_object_set_new(out, "bytes_in", j_int(st, C_BYTES_IN));
		json_object_set_new(out, "bytes_out", j_int(st, C_BYTES_OUT));
		json_object_set_new(out, "prompt_tokens", j_int(st, C_PTOK));
		json_object_set_new(out, "completion_tokens", j_int(st,
		    C_CTOK));
		json_object_set_new(out, "total_tokens", j_int(st, C_TTOK));
		json_object_set_new(out, "error", j_text(st, C_ERROR));
	}
	json_object_set_new(o, "outcome", out);
	return o;
}

static void
print_json_line(json_t *o, FILE *out)
{
	char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER |
	    JSON_ENSURE_ASCII);

	if (s != NULL) {
		fputs(s, out);
		free(s);
	}
}

/* "iban=1,email=2" from {"iban":1,"email":2}. */
static char *
findings_short(const char *js)
{
	json_t *o = js ? json_loads(js, 0, NULL) : NULL;
	const char *k;
	json_t *v;
	char *s = xstrdup(""), *n;

	if (!json_is_object(o)) {
		json_decref(o);
		free(s);
		return xstrdup(js ? js : "");
	}
	json_object_foreach(o, k, v) {
		n = xasprintf("%s%s%s=%lld", s, *s ? "," : "", k,
		    json_is_integer(v) ? (long long)json_integer_value(v) : 0LL);
		free(s);
		s = n;
	}
	json_decref(o);
	if (*s == '\0') {
		free(s);
		s = xstrdup("-");
	}
	return s;
}

/* table: rows are kept until the widths are known */
#define TCOLS 9
static const char *const theads[TCOLS] = {
	"TIME", "DECISION", "CLIENT", "MODEL", "LEVEL", "ACTION", "BACKEND",
	"STATUS", "FINDINGS"
};

struct table {
	char **cells;		/* nrows * TCOLS */
	size_t nrows, cap;
	size_t width[TCOLS];
};

/* Control characters would break the alignment or the terminal. */
static char *
printable(const char *s)
{
	char *o = xstrdup(s ? s : "-");
	char *p;

	for (p = o; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	return o;
}

static void
table_add(struct table *t, sqlite3_stmt *st)
{
	char ts[32], status[16];
	const char *backend;
	char **row;
	size_t i;

	if (t->nrows == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 64;
		t->cells = xrealloc(t->cells, t->cap * TCOLS * sizeof(char *));
	}
	row = t->cells + t->nrows * TCOLS;
	fmt_rfc3339_ms(sqlite3_column_int64(st, C_TS), ts, sizeof(ts));
	if (sqlite3_column_type(st, C_STATUS) == SQLITE_NULL)
		snprintf(status, sizeof(status), "-");
	else
		snprintf(status, sizeof(status), "%d", sqlite3_column_int(st,
		    C_STATUS));
	backend = col_text(st, C_ANSWERED) ? col_text(st, C_ANSWERED) :
	    col_text(st, C_BACKEND);
	row[0] = xstrdup(ts);
	row[1] = printable(col_text(st, C_ID));
	row[2] = printable(col_text(st, C_CLIENT));
	row[3] = printable(col_text(st, C_MODEL));
	row[4] = printable(col_text(st, C_LEVEL));
	row[5] = printable(col_text(st, C_ACTION));
	row[6] = printable(backend);
	row[7] = xstrdup(status);
	{
		char *f = findings_short(col_text(st, C_FINDINGS));

		row[8] = printable(f);
		free(f);
	}
	for (i = 0; i < TCOLS; i++)
		if (strlen(row[i]) > t->width[i])
			t->width[i] = strlen(row[i]);
	t->nrows++;
}

static void
table_print(struct table *t, FILE *out)
{
	size_t r, i;

	for (i = 0; i < TCOLS; i++)
		if (strlen(theads[i]) > t->width[i])
			t->width[i] = strlen(theads[i]);
	/* the last column is not padded: no trailing blanks */
	for (i = 0; i + 1 < TCOLS; i++)
		fprintf(out, "%-*s  ", (int)t->width[i], theads[i]);
	fprintf(out, "%s\n", theads[TCOLS - 1]);
	for (r = 0; r < t->nrows; r++) {
		for (i = 0; i + 1 < TCOLS; i++)
			fprintf(out, "%-*s  ", (int)t->width[i],
			    t->cells[r * TCOLS + i]);
		fprintf(out, "%s\n", t->cells[r * TCOLS + TCOLS - 1]);
	}
	fprintf(out, "(%zu decision%s)\n", t->nrows, t->nrows == 1 ? "" : "s");
}

static void
table_free(struct table *t)
{
	size_t i;

	for (i = 0; i < t->nrows * TCOLS; i++)
		free(t->cells[i]);
	free(t->cells);
}

/* CSV (RFC 4180) */
static const struct {
	const char *name;
	int col;		/* -1: computed */
} csv_cols[] = {
	{ "ts", -1 }, { "decision_id", C_ID }, { "client", C_CLIENT },
	{ "endpoint", C_ENDPOINT }, { "model", C_MODEL },
	{ "findings", C_FINDINGS }, { "declared_level", C_DECLARED },
	{ "level", C_LEVEL }, { "level_rule", C_RULE },
	{ "policy_name", C_POLICY }, { "policy_sha256", C_POLICY_SHA },
	{ "action", C_ACTION }, { "reason", C_REASON },
	{ "backend", C_BACKEND }, { "operator_country", -2 },
	{ "parent_country", -3 }, { "cloud_act", C_CLOUD_ACT },
	{ "status", C_STATUS }, { "answered_by", C_ANSWERED },
	{ "attempts", C_ATTEMPTS }, { "latency_ms", C_LATENCY },
	{ "ttfb_ms", C_TTFB }, { "bytes_in", C_BYTES_IN },
	{ "bytes_out", C_BYTES_OUT }, { "prompt_tokens", C_PTOK },
	{ "completion_tokens", C_CTOK }, { "total_tokens", C_TTOK },
	{ "error", C_ERROR },
};

static void
csv_field(FILE *out, const char *s, int is_text)
{
	const char *p;
	int quote = 0;

	if (s == NULL)
		return;
	for (p = s; *p; p++)
		if (*p == ',' || *p == '"' || *p == '\r' || *p == '\n')
			quote = 1;
	if (quote)
		fputc('"', out);
	if (is_text && strchr("=+-@\t\r", s[0]) != NULL && s[0] != '\0')
		fputc('\'', out);
	for (p = s; *p; p++) {
		if (*p == '"')
			fputc('"', out);
		fputc(*p, out);
	}
	if (quote)
		fputc('"', out);
}

static void
csv_header(FILE *out)
{
	size_t i;

	for (i = 0; i < ARRAY_LEN(csv_cols); i++) {
		if (i)
			fputc(',', out);
		fputs(csv_cols[i].name, out);
	}
	fputs("\r\n", out);
}

static void
csv_row(FILE *out, sqlite3_stmt *st)
{
	size_t i;

	for (i = 0; i < ARRAY_LEN(csv_cols); i++) {
		int c = csv_cols[i].col;

		if (i)
			fputc(',', out);
		if (c == -1) {
			char ts[32];

			fmt_rfc3339_ms(sqlite3_column_int64(st, C_TS), ts,
			    sizeof(ts));
			csv_field(out, ts, 0);
		} else if (c == -2 || c == -3) {
			json_t *f = col_text(st, C_FACTS) ? json_loads(col_text(
			    st, C_FACTS), 0, NULL) : NULL;
			json_t *v = json_object_get(f, c == -2 ?
			    "operator_country" : "parent_country");

			if (json_is_string(v))
				csv_field(out, json_string_value(v), 1);
			json_decref(f);
		} else if (c == C_CLOUD_ACT) {
			csv_field(out, sqlite3_column_int(st, c) ? "true" :
			    "false", 0);
		} else if (sqlite3_column_type(st, c) == SQLITE_INTEGER) {
			csv_field(out, col_text(st, c), 0);
		} else {
			csv_field(out, col_text(st, c), 1);
		}
	}
	fputs("\r\n", out);
}

/* Run the query and print it. Returns the exit code; *nrows the count. */
static int
run_query(const char *cmd, sqlite3 *db, const char *path,
    const struct qopts *q, FILE *out, size_t *nrows)
{
	char *sql = build_query(q);
	sqlite3_stmt *st = NULL;
	struct table t = { 0 };
	size_t n = 0;
	int rc;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		free(sql);
		return db_error(cmd, db, path);
	}
	free(sql);
	bind_query(st, q);
	if (q->fmt == FMT_JSON)
		fputs("[", out);
	else if (q->fmt == FMT_CSV)
		csv_header(out);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *o;

		switch (q->fmt) {
		case FMT_TABLE:
			table_add(&t, st);
			break;
		case FMT_JSON:
		case FMT_JSONL:
			o = row_json(st);
			if (q->fmt == FMT_JSON)
				fputs(n ? ",\n" : "\n", out);
			print_json_line(o, out);
			if (q->fmt == FMT_JSONL)
				fputc('\n', out);
			json_decref(o);
			break;
		case FMT_CSV:
			csv_row(out, st);
			break;
		}
		n++;
	}
	if (rc != SQLITE_DONE) {
		table_free(&t);
		sqlite3_finalize(st);
		if (q->fmt == FMT_JSON)
			fputs("\n]\n", out);
		return db_error(cmd, db, path);
	}
	sqlite3_finalize(st);
	if (q->fmt == FMT_TABLE)
		table_print(&t, out);
	else if (q->fmt == FMT_JSON)
		fputs(n ? "\n]\n" : "]\n", out);
	table_free(&t);
	if (nrows)
		*nrows = n;
	return 0;
}

/* ---- subcommands ---- */

static int
log_query(int argc, char **argv, const char *path)
{
	struct qopts q;
	sqlite3 *db;
	int rc;

	memset(&q, 0, sizeof(q));
	if ((rc = parse_query_opts("query", argc, argv, &q, 1, NULL, NULL)))
		return rc;
	if ((db = open_log("query", path, 0)) == NULL)
		return 2;
	rc = run_query("query", db, path, &q, stdout, NULL);
	sqlite3_close(db);
	return rc;
}

static int
log_verify(int argc, char **argv, const char *path)
{
	struct dlog_verify_report rep;
	char err[512];
	sqlite3 *db;
	int rc;

	if (argc > 1)
		return usage_error("verify", "unexpected argument '%s'", argv[1]);
	if ((db = open_log("verify", path, 0)) == NULL)
		return 2;
	rc = dlog_verify(db, &rep, err, sizeof(err));
	if (rc < 0) {
		rc = db_error("verify", db, path);
	} else if (rc > 0) {
		printf("log verify: FAILED: %s\n", rep.problem);
		printf("rows checked before the failure are intact; everything "
		    "from the named row on is untrustworthy until explained\n");
		rc = 1;
	} else {
		printf("%lld rows verified (%lld decisions, %lld outcomes, %lld "
		    "events); chain head %s\n", (long long)(rep.rows[0] +
		    rep.rows[1] + rep.rows[2]), (long long)rep.rows[0],
		    (long long)rep.rows[1], (long long)rep.rows[2], rep.head);
	}
	sqlite3_close(db);
	return rc;
}

/* Decisions and events, merged by time, as JSON lines. */
static int
log_export(int argc, char **argv, const char *path)
{
	struct qopts q;
	sqlite3 *db;
	sqlite3_stmt *ds = NULL, *es = NULL;
	char *sql;
	int rc, drc, erc;

	memset(&q, 0, sizeof(q));
	if ((rc = parse_query_opts("export", argc, argv, &q, 0, NULL, NULL)))
		return rc;
	if ((db = open_log("export", path, 0)) == NULL)
		return 2;
	/* one consistent snapshot for both tables */
	if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
		goto dberr;
	sql = build_query(&q);
	rc = sqlite3_prepare_v2(db, sql, -1, &ds, NULL);
	free(sql);
	if (rc != SQLITE_OK)
		goto dberr;
	bind_query(ds, &q);
	if (sqlite3_prepare_v2(db, "SELECT seq, ts_ms, kind, detail_json, "
	    "row_hash FROM events WHERE ts_ms >= ?1 AND ts_ms < ?2 ORDER BY seq",
	    -1, &es, NULL) != SQLITE_OK)
		goto dberr;
	sqlite3_bind_int64(es, 1, q.has_since ? q.since : INT64_MIN);
	sqlite3_bind_int64(es, 2, q.has_until ? q.until : INT64_MAX);
	drc = sqlite3_step(ds);
	erc = sqlite3_step(es);
	while (drc == SQLITE_ROW || erc == SQLITE_ROW) {
		json_t *o;

		if (drc == SQLITE_ROW && (erc != SQLITE_ROW ||
		    sqlite3_column_int64(ds, C_TS) <=
		    sqlite3_column_int64(es, 1))) {
			o = row_json(ds);
			drc = sqlite3_step(ds);
		} else {
			char ts[32];

			o = json_object();
			fmt_rfc3339_ms(sqlite3_column_int64(es, 1), ts,
			    sizeof(ts));
			json_object_set_new(o, "record", json_string("event"));
			json_object_set_new(o, "seq", j_int(es, 0));
			json_object_set_new(o, "ts", json_string(ts));
			json_object_set_new(o, "ts_ms", j_int(es, 1));
			json_object_set_new(o, "kind", j_text(es, 2));
			json_object_set_new(o, "detail", j_json(es, 3));
			json_object_set_new(o, "row_hash", j_text(es, 4));
			erc = sqlite3_step(es);
		}
		print_json_line(o, stdout);
		fputc('\n', stdout);
		json_decref(o);
	}
	if (drc != SQLITE_DONE || erc != SQLITE_DONE)
		goto dberr;
	sqlite3_finalize(ds);
	sqlite3_finalize(es);
	sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	sqlite3_close(db);
	return 0;
dberr:
	rc = db_error("export", db, path);
	sqlite3_finalize(ds);
	sqlite3_finalize(es);
	sqlite3_close(db);
	return rc;
}

static int
log_prune(int argc, char **argv, const char *path)
{
	struct dlog_prune_report pr;
	char err[768], ts[32];
	int64_t before = 0;
	int have = 0, i, rc;
	sqlite3 *db;

	for (i = 1; i < argc; i++) {
		int missing = 0;
		const char *v = opt_value(argc, argv, &i, "--before", &missing);

		if (missing)
			return usage_error("prune", "--before needs a value");
		if (v == NULL)
			return usage_error("prune", argv[i][0] == '-' ?
			    "unknown option '%s'" : "unexpected argument '%s'",
			    argv[i]);
		if (parse_time_opt("prune", "--before", v, &before))
			return 2;
		have = 1;
	}
	if (!have)
		return usage_error("prune", "--before T is required (what to "
		    "delete: rows older than T, e.g. --before -90d)");
	if (before > now_ms())
		return usage_error("prune", "--before is in the future: that "
		    "would delete decisions still being made");
	if ((db = open_log("prune", path, 1)) == NULL)
		return 2;
	rc = dlog_prune(db, before, &pr, err, sizeof(err));
	fmt_rfc3339_ms(before, ts, sizeof(ts));
	if (rc == 0) {
		printf("pruned %lld decisions (%lld fingerprints), %lld outcomes "
		    "and %lld events older than %s; the prune is recorded and the "
		    "rest of the log still verifies\n",
		    (long long)pr.rows[0], (long long)pr.fingerprints,
		    (long long)pr.rows[1], (long long)pr.rows[2], ts);
	} else if (rc > 0) {
		fprintf(stderr, "sovgate log prune: %s\n", err);
		rc = 1;
	} else {
		fprintf(stderr, "sovgate log prune: %s: %s\n", path, err);
		rc = 2;
	}
	sqlite3_close(db);
	return rc;
}

/* ---- find-value ---- */

/* Candidate normalisations of a value. The classifier's own (exactly
 * what the gateway fingerprinted) come first; the documented fallbacks
 * cover values it does not recognise out of context:
 *   - an e-mail address (has '@'): lower case;
 *   - anything else: upper case without spaces, '-', '.', '/'
 *     (IBANs, national ids, card numbers, custom identifiers);
 *   - the value as typed, trimmed.
 * Values are never printed or stored. */
struct cand {
	char type[64];
	char hmac[65];
};

static void
add_cand(struct cand *c, size_t *n, const char *type, const unsigned char
    key[32], const char *v, size_t len)
{
	unsigned char mac[32];
	char hex[65];
	size_t i;

	if (len == 0 || *n >= MAX_HMACS)
		return;
	hmac_sha256(NULL, key, 32, v, len, mac);
	hex_encode(mac, 32, hex);
	OPENSSL_cleanse(mac, sizeof(mac));
	for (i = 0; i < *n; i++)
		if (strcmp(c[i].hmac, hex) == 0)
			return;
	snprintf(c[*n].type, sizeof(c[*n].type), "%s", type);
	memcpy(c[*n].hmac, hex, sizeof(hex));
	(*n)++;
}

/* Exposed for tests through logcmd.h. */
size_t
logcmd_value_hmacs(const char *value, const unsigned char key[32],
    char hmacs[][65], char types[][64], size_t max)
{
	struct cand c[MAX_HMACS];
	struct classifier *clf;
	struct diags *d = diags_new();
	struct scan *s;
	size_t n = 0, i, len, k;
	char *buf;

	while (*value == ' ' || *value == '\t')
		value++;
	len = strlen(value);
	while (len > 0 && (value[len - 1] == ' ' || value[len - 1] == '\t' ||
	    value[len - 1] == '\n' || value[len - 1] == '\r'))
		len--;
	clf = classifier_new(NULL, 0, d);
	s = scan_new();
	if (clf != NULL) {
		classifier_scan(clf, s, value, len);
		for (i = 0; i < s->nvalues; i++)
			add_cand(c, &n, s->values[i].type, key,
			    s->values[i].value, s->values[i].len);
	}
	buf = xmalloc(len + 1);
	if (memchr(value, '@', len) != NULL) {
		for (i = 0; i < len; i++)
			buf[i] = (char)tolower((unsigned char)value[i]);
		add_cand(c, &n, "email", key, buf, len);
	}
	for (i = 0, k = 0; i < len; i++)
		if (strchr(" -./\t", value[i]) == NULL)
			buf[k++] = (char)toupper((unsigned char)value[i]);
	add_cand(c, &n, "identifier", key, buf, k);
	add_cand(c, &n, "as typed", key, value, len);
	OPENSSL_cleanse(buf, len + 1);
	free(buf);
	scan_reset(s);
	scan_free(s);
	classifier_free(clf);
	diags_free(d);
	for (i = 0; i < n && i < max; i++) {
		memcpy(hmacs[i], c[i].hmac, 65);
		snprintf(types[i], 64, "%s", c[i].type);
	}
	return n < max ? n : max;
}

static char *
default_key_path(const char *db_path)
{
	const char *slash = db_path ? strrchr(db_path, '/') : NULL;

	if (slash == NULL)
		return xstrdup("fingerprint.key");
	return xasprintf("%.*s/fingerprint.key", (int)(slash - db_path),
	    db_path);
}

static int
log_find_value(int argc, char **argv, const char *path, const char *key_file)
{
	struct qopts q;
	const char *value = NULL, *key_opt = NULL;
	char types[MAX_HMACS][64];
	unsigned char key[32];
	struct diags *d;
	char *kpath;
	sqlite3 *db;
	size_t i, n, nrows = 0;
	int rc;

	memset(&q, 0, sizeof(q));
	if ((rc = parse_query_opts("find-value", argc, argv, &q, 0, &value,
	    &key_opt)))
		return rc;
	if (value == NULL || *value == '\0')
		return usage_error("find-value", "give the VALUE to look for "
		    "(an IBAN, an e-mail address, a patient number, ...)");
	kpath = key_opt ? xstrdup(key_opt) : key_file ? xstrdup(key_file) :
	    default_key_path(path);
	d = diags_new();
	if (fpkey_load(kpath, 0, key, d) < 0) {
		diags_print(d, stderr);
		fprintf(stderr, "sovgate log find-value: the fingerprint key %s "
		    "is needed to search (set log.fingerprint_key_file, or pass "
		    "--key FILE)\n", kpath);
		diags_free(d);
		free(kpath);
		return 2;
	}
	diags_free(d);
	free(kpath);
	n = logcmd_value_hmacs(value, key, q.hmacs, types, MAX_HMACS);
	OPENSSL_cleanse(key, sizeof(key));
	q.nhmacs = n;
	q.by_hmac = 1;
	if ((db = open_log("find-value", path, 0)) == NULL)
		return 2;
	if (q.fmt == FMT_TABLE) {
		fprintf(stderr, "searching fingerprints as:");
		for (i = 0; i < n; i++)
			fprintf(stderr, "%s %s", i ? "," : "", types[i]);
		fprintf(stderr, "\n");
	}
	rc = run_query("find-value", db, path, &q, stdout, &nrows);
	sqlite3_close(db);
	if (rc == 0 && nrows == 0 && q.fmt == FMT_TABLE)
		fprintf(stderr, "no decision has this value among its findings "
		    "(or it was logged under another fingerprint key)\n");
	return rc;
}

int
cmd_log_ex(int argc, char **argv, const char *db_path, const char *key_file)
{
	const char *sub;

	if (argc < 1) {
		usage_log(stderr);
		return 2;
	}
	sub = argv[0];
	if (strcmp(sub, "-h") == 0 || strcmp(sub, "--help") == 0 ||
	    strcmp(sub, "help") == 0) {
		usage_log(stdout);
		return 0;
	}
	{
		int i;

		for (i = 1; i < argc; i++)
			if (strcmp(argv[i], "-h") == 0 ||
			    strcmp(argv[i], "--help") == 0) {
				usage_log(stdout);
				return 0;
			}
	}
	if (strcmp(sub, "query") == 0)
		return log_query(argc, argv, db_path);
	if (strcmp(sub, "verify") == 0)
		return log_verify(argc, argv, db_path);
	if (strcmp(sub, "export") == 0)
		return log_export(argc, argv, db_path);
	if (strcmp(sub, "prune") == 0)
		return log_prune(argc, argv, db_path);
	if (strcmp(sub, "find-value") == 0)
		return log_find_value(argc, argv, db_path, key_file);
	fprintf(stderr, "sovgate log: unknown command '%s'\n\n", sub);
	usage_log(stderr);
	return 2;
}

int
cmd_log(int argc, char **argv, const char *db_path)
{
	return cmd_log_ex(argc, argv, db_path, NULL);
}
