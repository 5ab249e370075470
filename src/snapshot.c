/*
 * snapshot.c - see snapshot.h.
 *
 * A snapshot is built completely (config, backends, policy, classifier,
 * /v1/models body, fingerprint key) before anyone sees it, and never
 * changes afterwards; the only shared mutable state is its reference count
 * and the process-wide "current" pointer, guarded by a mutex so that a
 * reader's get+ref cannot race a reload's swap+unref.
 */
#include "snapshot.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static pthread_mutex_t cur_mu = PTHREAD_MUTEX_INITIALIZER;
static struct snapshot *cur;
static atomic_ulong generations;

/* refcnt is declared int in the header (shared with the proxy code); we
 * only ever touch it through these atomic builtins. */
struct snapshot *
snapshot_ref(struct snapshot *s)
{
	if (s != NULL)
		__atomic_fetch_add(&s->refcnt, 1, __ATOMIC_RELAXED);
	return s;
}

static void
snapshot_destroy(struct snapshot *s)
{
	if (s->tls_ctx && s->tls_ctx_free)
		s->tls_ctx_free(s->tls_ctx);
	classifier_free(s->clf);
	policy_free(s->shadow);
	policy_free(s->policy);
	backends_free(s->backends);
	config_free(s->cfg);
	free(s->models_json);
	explicit_bzero(s->fp_key, sizeof(s->fp_key));
	free(s);
}

void
snapshot_unref(struct snapshot *s)
{
	if (s == NULL)
		return;
	if (__atomic_sub_fetch(&s->refcnt, 1, __ATOMIC_ACQ_REL) == 0)
		snapshot_destroy(s);
}

struct snapshot *
snapshot_current(void)
{
	struct snapshot *s;

	pthread_mutex_lock(&cur_mu);
	s = snapshot_ref(cur);
	pthread_mutex_unlock(&cur_mu);
	return s;
}

void
snapshot_install(struct snapshot *s)
{
	struct snapshot *old;

	pthread_mutex_lock(&cur_mu);
	old = cur;
	cur = s;
	pthread_mutex_unlock(&cur_mu);
	/* outside the lock: the last unref frees a whole snapshot */
	snapshot_unref(old);
}

/* ---- fingerprint key ---- */

int
fpkey_load(const char *path, int create, unsigned char out[32],
    struct diags *d)
{
	unsigned char buf[4096];
	struct stat st;
	ssize_t n;
	size_t len = 0;
	int fd;

	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT && create) {
		unsigned char key[32];

		/* First start: make a key nobody else can read. O_EXCL so
		 * that two starting processes cannot both write one. */
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
		    O_CLOEXEC, 0600);
		if (fd < 0) {
			diags_add(d, DIAG_ERROR, path, 0, 0, "cannot create the "
			    "fingerprint key: %s; create its directory or set "
			    "log.fingerprint_key_file", strerror(errno));
			return -1;
		}
		if (RAND_bytes(key, sizeof(key)) != 1 ||
		    write(fd, key, sizeof(key)) != (ssize_t)sizeof(key) ||
		    fsync(fd) != 0) {
			diags_add(d, DIAG_ERROR, path, 0, 0, "cannot write the "
			    "fingerprint key: %s", strerror(errno));
			explicit_bzero(key, sizeof(key));
			close(fd);
			unlink(path);
			return -1;
		}
		close(fd);
		memcpy(out, key, 32);
		explicit_bzero(key, sizeof(key));
		log_info("created fingerprint key %s (mode 0600); back it up: "
		    "without it, log find-value cannot match old decisions",
		    path);
		return 0;
	}
	if (fd < 0) {
		diags_add(d, DIAG_ERROR, path, 0, 0, "cannot open the fingerprint "
		    "key: %s", strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		diags_add(d, DIAG_ERROR, path, 0, 0, "the fingerprint key is not "
		    "a regular file");
		close(fd);
		return -1;
	}
	if (st.st_mode & 077) {
		diags_add(d, DIAG_ERROR, path, 0, 0, "the fingerprint key is "
		    "readable by others (mode %04o); refusing to use it: run "
		    "chmod 600 %s", (unsigned)(st.st_mode & 07777), path);
		close(fd);
		return -1;
	}
	while (len < sizeof(buf) && (n = read(fd, buf + len,
	    sizeof(buf) - len)) > 0)
		len += (size_t)n;
	close(fd);
	if (len < 32) {
		diags_add(d, DIAG_ERROR, path, 0, 0, "the fingerprint key has "
		    "%zu bytes; it needs at least 32 random bytes (e.g. "
		    "openssl rand 32 > FILE)", len);
		explicit_bzero(buf, sizeof(buf));
		return -1;
	}
	/* Exactly 32 bytes are the key; anything longer (a hex or base64
	 * text, say) is condensed with SHA-256 so every byte counts. */
	if (len == 32)
		memcpy(out, buf, 32);
	else
		sha256_raw(buf, len, out);
	explicit_bzero(buf, sizeof(buf));
	return 0;
}

/* ---- building ---- */

static int
cmp_cstr(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

char *
models_json_build(const struct backend_set *bs)
{
	const char **names = NULL;
	size_t n = 0, cap = 0, i, j;
	json_t *root = json_object(), *data = json_array();
	char *s;

	for (i = 0; bs && i < bs->n; i++)
		for (j = 0; j < bs->v[i]->nmodels; j++) {
			if (n == cap) {
				cap = cap ? cap * 2 : 16;
				names = xrealloc(names, cap * sizeof(*names));
			}
			names[n++] = bs->v[i]->models[j].name;
		}
	if (n)
		qsort(names, n, sizeof(*names), cmp_cstr);
	for (i = 0; i < n; i++) {
		if (i > 0 && strcmp(names[i], names[i - 1]) == 0)
			continue;
		json_array_append_new(data, json_pack("{s:s, s:s, s:s}", "id",
		    names[i], "object", "model", "owned_by", "sovgate"));
	}
	json_object_set_new(root, "object", json_string("list"));
	json_object_set_new(root, "data", data);
	s = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(root);
	free(names);
	if (s == NULL)
		fatal("models_json_build: out of memory");
	return s;
}

struct classifier *
classifier_for(const struct policy *p, const struct policy *shadow,
    struct diags *d)
{
	size_t n = 0, i;
	struct custom_def *defs;
	struct classifier *c;

	/* The shadow policy's detectors run too: its decisions must see
	 * the findings it would act on. Shallow copies: the policies keep
	 * ownership of every string. */
	defs = xcalloc((p ? p->ncustom : 0) + (shadow ? shadow->ncustom : 0) +
	    1, sizeof(*defs));
	for (i = 0; p && i < p->ncustom; i++)
		defs[n++] = p->custom[i].def;
	for (i = 0; shadow && i < shadow->ncustom; i++) {
		size_t j;

		for (j = 0; j < n; j++)
			if (strcmp(defs[j].name, shadow->custom[i].def.name) == 0)
				break;
		if (j == n)
			defs[n++] = shadow->custom[i].def;
	}
	c = classifier_new(defs, n, d);
	free(defs);
	return c;
}

struct snapshot *
snapshot_load(const char *config_path, int load_key, struct diags *d)
{
	struct snapshot *s = xcalloc(1, sizeof(*s));
	size_t errs0 = d->nerrors;

	s->refcnt = 1;
	s->cfg = config_load(config_path, d);
	if (s->cfg == NULL)
		goto fail;
	/* Go on after a bad backend set, to report the policy's problems
	 * too; the snapshot is refused at the end either way. */
	s->backends = backends_load(s->cfg->backends_path, d);
	s->policy = policy_load(s->cfg->policy_path, s->backends, d);
	if (s->cfg->shadow_policy_path != NULL)
		s->shadow = policy_load(s->cfg->shadow_policy_path,
		    s->backends, d);
	if (s->backends == NULL || s->policy == NULL ||
	    (s->cfg->shadow_policy_path && s->shadow == NULL))
		goto fail;
	s->clf = classifier_for(s->policy, s->shadow, d);
	if (s->clf == NULL)
		goto fail;
	s->models_json = models_json_build(s->backends);
	if (load_key && s->cfg->fingerprint_key_file != NULL) {
		if (fpkey_load(s->cfg->fingerprint_key_file, 1, s->fp_key,
		    d) < 0)
			goto fail;
		s->has_fp_key = 1;
	}
	if (d->nerrors > errs0)
		goto fail;
	s->generation = atomic_fetch_add(&generations, 1) + 1;
	return s;
fail:
	if (d->nerrors == errs0)
		diags_add(d, DIAG_ERROR, config_path, 0, 0, "configuration "
		    "rejected");
	snapshot_destroy(s);
	return NULL;
}
