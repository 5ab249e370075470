/*
 * adapter_vertex.c - kind `vertex`: Mistral models on Google Vertex AI.
 *
 * POST {base}/v1/projects/{project}/locations/{region}/publishers/mistralai/
 * models/{model}:rawPredict (or :streamRawPredict for a stream). The body
 * is Mistral's own chat (or FIM) request with "model" set to the model
 * name without its "@version"; the answer is Mistral's, which is OpenAI's
 * wire format, so it passes through unchanged (SSE for streams).
 *
 * Auth `google-service-account`: an OAuth2 access token from gauth.c,
 * made ready by prepare() before build() — never fetched on the loop.
 * Auth `bearer` (a token minted elsewhere, in the environment) and `none`
 * (tests behind a private endpoint) are accepted too.
 */
#include "adapter.h"
#include "gauth.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <openssl/crypto.h>

/* A path segment: unreserved characters and '@' (a model version) kept,
 * the rest percent-encoded. */
static char *
seg_encode(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	char *o = xmalloc(strlen(s) * 3 + 1), *q = o;

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '.' ||
		    c == '_' || c == '~' || c == '@') {
			*q++ = (char)c;
		} else {
			*q++ = '%';
			*q++ = hex[c >> 4];
			*q++ = hex[c & 15];
		}
	}
	*q = '\0';
	return o;
}

static int
vertex_prepare(const struct fwd_ctx *c, const struct adapter_env *env,
    adapter_ready_fn ready, void *arg, void **handle, char *err,
    size_t errlen)
{
	const struct backend *b = c->b;
	struct gauth *g;

	if (b->auth.type != AUTH_GSA)
		return 1;
	g = gauth_for(b);
	if (g == NULL) {
		snprintf(err, errlen, "backend '%s' names no service-account "
		    "credentials_file", b->name);
		return -1;
	}
	return gauth_prepare(g, env->mb, ready, arg, handle, err, errlen);
}

static void
vertex_cancel(void *handle)
{
	gauth_cancel(handle);
}

static int
build_vertex(const struct fwd_ctx *c, struct evbuffer *out, char *err,
    size_t errlen)
{
	const struct backend *b = c->b;
	char *project = NULL, *region = NULL, *model = NULL, *path = NULL;
	char *body = NULL, *auth = NULL, *tok = NULL, *bare;
	const char *at;
	size_t blen = 0;
	int rc = -1;

	if (c->ep != EP_CHAT && c->ep != EP_FIM) {
		snprintf(err, errlen, "backend '%s' (Vertex AI) serves chat and "
		    "FIM completions only", b->name);
		return -1;
	}
	if (b->project == NULL || b->region == NULL) {
		snprintf(err, errlen, "backend '%s' needs project and region",
		    b->name);
		return -1;
	}
	switch (b->auth.type) {
	case AUTH_GSA: {
		struct gauth *g = gauth_for(b);

		tok = g ? gauth_token(g) : NULL;
		if (tok == NULL) {
			snprintf(err, errlen, "no valid OAuth token for backend "
			    "'%s'", b->name);
			return -1;
		}
		auth = xasprintf("Authorization: Bearer %s\r\n", tok);
		break;
	}
	case AUTH_BEARER:
		if (b->auth.key == NULL) {
			snprintf(err, errlen, "credentials for backend '%s' are "
			    "missing (%s)", b->name, b->auth.key_env ?
			    b->auth.key_env : "key");
			return -1;
		}
		auth = xasprintf("Authorization: Bearer %s\r\n", b->auth.key);
		break;
	case AUTH_NONE:
		break;
	default:
		snprintf(err, errlen, "backend '%s': kind vertex takes auth "
		    "google-service-account, bearer or none", b->name);
		return -1;
	}
	/* Vertex names the model in the URL (with its version); Mistral's
	 * body wants the bare name. */
	at = strchr(c->model_id, '@');
	bare = at ? xstrndup(c->model_id, (size_t)(at - c->model_id)) :
	    xstrdup(c->model_id);
	json_object_set_new(c->body, "model", json_string(bare));
	free(bare);
	adapter_mistral_fields(c->body);
	body = adapter_dump(c->body, &blen);
	if (body == NULL) {
		snprintf(err, errlen, "cannot serialise the request");
		goto out;
	}
	project = seg_encode(b->project);
	region = seg_encode(b->region);
	model = seg_encode(c->model_id);
	path = xasprintf("%s/v1/projects/%s/locations/%s/publishers/mistralai/"
	    "models/%s:%s", b->base_path ? b->base_path : "", project, region,
	    model, c->stream ? "streamRawPredict" : "rawPredict");
	adapter_write_head(c, out, "POST", path, auth, blen);
	evbuffer_add(out, body, blen);
	rc = 0;
out:
	if (auth)
		OPENSSL_cleanse(auth, strlen(auth));
	if (tok)
		OPENSSL_cleanse(tok, strlen(tok));
	free(auth);
	free(tok);
	free(project);
	free(region);
	free(model);
	free(path);
	free(body);
	return rc;
}

/* The answer passes through; a 401 means the cached token was revoked
 * or the key rotated, so it is dropped and the next request fetches a
 * fresh one. Returns no state (nothing to translate). */
static void *
vertex_resp_new(const struct fwd_ctx *c, int status,
    const struct http_head *up)
{
	struct gauth *g;

	(void)up;
	if (status == 401 && c->b->auth.type == AUTH_GSA &&
	    (g = gauth_for(c->b)) != NULL) {
		gauth_invalidate(g);
		log_warn("backend %s refused its OAuth token (401); a new one "
		    "will be fetched", c->b->name);
	}
	return NULL;
}

const struct adapter adapter_vertex = {
	.kind = "vertex",
	.prepare = vertex_prepare,
	.cancel = vertex_cancel,
	.build = build_vertex,
	.resp_new = vertex_resp_new,
};
