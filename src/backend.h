/*
 * backend.h - backend descriptors (SPEC §4.2): the facts of a pipe, its
 * protocol, its credentials (resolved from the environment at load time,
 * never written anywhere) and its model map.
 */
#ifndef SOVGATE_BACKEND_H
#define SOVGATE_BACKEND_H

#include <stddef.h>
#include <stdint.h>
#include "diag.h"

enum backend_kind { BK_OPENAI, BK_MISTRAL, BK_AZURE, BK_BEDROCK, BK_VERTEX };
enum hosting { HOST_SELF, HOST_VENDOR };
enum key_custody { KEYS_CUSTOMER, KEYS_PROVIDER };
enum auth_type { AUTH_NONE, AUTH_BEARER, AUTH_API_KEY, AUTH_SIGV4, AUTH_GSA };

struct model_map {
	char *name;		/* what clients ask for */
	char *id;		/* what this backend calls it */
};

struct backend_auth {
	enum auth_type type;
	/* names of the environment variables / files, for messages */
	char *key_env, *access_key_env, *secret_key_env, *session_token_env;
	char *credentials_file;
	/* resolved secrets (NULL when missing); never logged */
	char *key, *access_key, *secret_key, *session_token;
	int missing;		/* a required secret was absent at load */
};

struct backend_tls {
	char *ca_file, *cert, *key, *server_name;
};

struct backend {
	char *name;
	char *file;		/* descriptor path, for messages */
	int line, col;		/* position of its name */
	enum backend_kind kind;
	char *endpoint;		/* as written, or the kind's default */
	/* parsed endpoint */
	int use_tls;
	char *host;
	int port;
	char *base_path;	/* "" or "/something" without trailing slash */
	char *pool_key;		/* "scheme://host:port|tls settings" */

	char *region, *project, *api_version;
	char *operator_name;
	char operator_country[3], parent_country[3];
	char (*data_countries)[3];
	size_t ndata;
	enum hosting hosting;
	enum key_custody key_custody;
	int64_t retention_ms;	/* 0 = none */

	struct backend_auth auth;
	struct backend_tls tls;
	struct model_map *models;
	size_t nmodels;

	/* per-backend overrides of limits (0 = use the config's) */
	int64_t connect_timeout_ms, first_byte_timeout_ms, stream_idle_timeout_ms;

	/* derived */
	int cloud_act;			/* operator or parent is US */
	char jurisdictions[2][3];	/* distinct of operator, parent */
	int njurisdictions;
	int index;			/* position in its backend_set */
	char *facts_json;		/* backend_facts_json, built at load */
};

struct backend_set {
	struct backend **v;
	size_t n;
};

/* Load one file or every *.yaml / *.yml of a directory (sorted by name).
 * NULL on error; every problem in d. Missing credentials are warnings. */
struct backend_set *backends_load(const char *path, struct diags *d);
void backends_free(struct backend_set *s);	/* NULL is a no-op */
const struct backend *backends_find(const struct backend_set *s,
    const char *name);
/* The backend's model id for a requested name; NULL if not served. */
const char *backend_model_id(const struct backend *b, const char *model);
const char *backend_kind_name(enum backend_kind k);
/* JSON object of the derived facts (operator_country, parent_country,
 * data_countries, hosting, key_custody, retention, jurisdictions,
 * cloud_act), as a newly allocated string. */
char *backend_facts_json(const struct backend *b);

/* Country-code membership of region names: "EU", "EEA" or an ISO code. */
int region_contains(const char *region, const char *cc);

/* ---- additions ---- */
/* ISO 3166-1 alpha-2 code (capitals) that is officially assigned. */
int country_code_valid(const char *cc);
/* "EU", "EEA" or a valid country code. */
int region_name_valid(const char *r);
const char *auth_type_name(enum auth_type t);
/* Split an http(s) URL; -1 with a reason ("must start with https://...")
 * in err. host and base_path are newly allocated on success. */
int endpoint_parse(const char *url, int *use_tls, char **host, int *port,
    char **base_path, char *err, size_t errlen);
/* 30d, 12h, 5m, 10s, 250ms, or "none" for 0. */
void duration_format(int64_t ms, char *out, size_t len);

#endif
