/*
 * config.h - the gateway config file (SPEC §4.1), loaded into an immutable
 * struct that is owned by a snapshot (snapshot.h).
 */
#ifndef SOVGATE_CONFIG_H
#define SOVGATE_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include "diag.h"

enum durability { DUR_STRICT, DUR_BATCHED };

struct client_def {
	char *name;
	unsigned char key_sha256[32];
	int has_key;		/* authenticates with a bearer key */
	unsigned char cert_sha256[32];
	int has_cert;		/* or with a client certificate (tls.client_ca) */
};

struct limits {
	uint64_t max_body;		/* 8 MiB */
	uint64_t max_header_size;	/* 16 KiB: request line + headers */
	int max_headers;		/* 100 */
	int max_json_depth;		/* 64 */
	int max_connections;		/* 4096, per process */
	int64_t header_timeout_ms;	/* 10 s: whole header block */
	int64_t body_timeout_ms;	/* 30 s: whole body */
	int64_t keepalive_timeout_ms;	/* 75 s: idle client between requests */
	int64_t upstream_connect_timeout_ms;	/* 5 s */
	int64_t upstream_first_byte_timeout_ms;	/* 120 s */
	int64_t stream_idle_timeout_ms;		/* 300 s */
	int64_t drain_timeout_ms;		/* 30 s */
	int64_t log_timeout_ms;		/* 5 s: wait for a strict commit */
};

/*
 * Keys of the file and their defaults (every relative path resolves against
 * the config file's directory):
 *   listen: 127.0.0.1:8443          admin_listen: 127.0.0.1:9464 (off|null)
 *   tls: {cert, key}                (none)
 *   policy: policy                  backends: backends
 *   shadow_policy: FILE|DIR         (none; evaluated, logged, never enforced)
 *   log: {database: LOCALSTATEDIR/lib/sovgate/decisions.db,
 *         durability: strict|batched (strict), batch_interval: 5ms,
 *         fingerprint_key_file: <database's directory>/fingerprint.key
 *                                  (null = no fingerprints)}
 *   clients: [{name, key_sha256}]   (none: a warning, every request is 401)
 *   limits: {max_body: 8MiB, max_header_size: 16KiB, max_headers: 100,
 *            max_json_depth: 64, max_connections: 4096, header_timeout: 10s,
 *            body_timeout: 30s, keepalive_timeout: 75s,
 *            upstream_connect_timeout: 5s, upstream_first_byte_timeout: 120s,
 *            stream_idle_timeout: 300s, drain_timeout: 30s, log_timeout: 5s}
 *   workers: auto | 1..1024 (auto)  cpu_affinity: auto | off (auto)
 *   user: NAME (stay)
 * Unknown keys are errors (with a "did you mean").
 */
struct gw_config {
	char *path;		/* absolute path of the config file */
	char *dir;		/* its directory: relative paths resolve here */
	char *listen;		/* "127.0.0.1:8443" */
	char *admin_listen;	/* "127.0.0.1:9464"; NULL = off */
	char *tls_cert, *tls_key;	/* optional listener TLS */
	char *tls_client_ca;	/* verify client certificates against it */
	char *policy_path;	/* absolute; a file or a directory */
	char *backends_path;	/* absolute; a file or a directory */
	char *log_database;	/* absolute */
	enum durability durability;
	int64_t batch_interval_ms;	/* batched mode: 5 ms */
	int log_sync_full;	/* log.sync: full (fsync every commit) */
	char *fingerprint_key_file;	/* absolute; NULL = none */
	char *shadow_policy_path;	/* optional candidate policy; absolute */
	struct client_def *clients;
	size_t nclients;
	struct limits limits;
	int workers;		/* 0 = auto (one per allowed CPU) */
	int cpu_affinity;	/* 1 = auto: one worker per CPU, pinned */
	char *user;		/* drop privileges to this user; NULL = stay */
	char *log_file;		/* operational and access log; NULL = stderr.
				   Reopened on SIGUSR1 (logrotate). */
};

void limits_defaults(struct limits *l);
/* Load and validate; NULL on any error (all of them in d). */
struct gw_config *config_load(const char *path, struct diags *d);
void config_free(struct gw_config *c);	/* NULL is a no-op */
/* Client by key (constant-time over every client); NULL if unknown. */
const struct client_def *config_find_client(const struct gw_config *c,
    const char *key, size_t keylen);
/* Client whose cert_sha256 is this certificate's fingerprint; NULL if none. */
const struct client_def *config_find_client_by_cert(const struct gw_config *c,
    const unsigned char sha256[32]);
const struct client_def *config_client_by_name(const struct gw_config *c,
    const char *name);

/* ---- additions ---- */
/* Directory part of a path ("." when none); newly allocated. */
char *path_dirname(const char *path);
/* p when absolute, else dir/p; newly allocated (NULL when p is NULL). */
char *path_resolve(const char *dir, const char *p);
/* 1 when s is "HOST:PORT" or "[V6]:PORT" with a port in 1..65535. */
int listen_addr_valid(const char *s);

#endif
