/*
 * adapter_azure.c - kind `azure`: Mistral models on Azure AI Foundry.
 *
 * Two URL shapes, both speaking OpenAI's wire format (so the answer passes
 * through unchanged):
 *   serverless   https://<name>.<region>.models.ai.azure.com (or
 *                ...inference.ai.azure.com)  POST /v1/chat/completions
 *   Foundry      https://<resource>.services.ai.azure.com
 *                POST /models/chat/completions?api-version=...
 *                where the body's "model" names the deployment.
 * The Foundry shape is chosen by the host name, or by an endpoint whose
 * path ends in "/models" (a private endpoint or a mock:
 * http://127.0.0.1:PORT/models). `api_version` is always sent to Foundry
 * (default 2024-05-01-preview) and to serverless endpoints when the
 * descriptor sets it. Auth: `api-key` header or `Authorization: Bearer`.
 */
#include "adapter.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <openssl/crypto.h>

#define AZURE_FOUNDRY_API_VERSION "2024-05-01-preview"

static int
ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && ascii_casecmp(s + n - m, suffix) == 0;
}

static int
azure_is_foundry(const struct backend *b)
{
	const char *bp = b->base_path ? b->base_path : "";

	return (b->host && ends_with(b->host, ".services.ai.azure.com")) ||
	    ends_with(bp, "/models");
}

/* Only unreserved characters in a query value we build. */
static int
query_value_safe(const char *v)
{
	for (; *v; v++) {
		char c = *v;

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '.' ||
		    c == '_' || c == '~'))
			return 0;
	}
	return 1;
}

/* The request path (with query) for endpoint ep; NULL with err if the
 * shape has no such endpoint. */
static char *
azure_path(const struct backend *b, enum endpoint ep, char *err,
    size_t errlen)
{
	const char *bp = b->base_path ? b->base_path : "";
	const char *ver = b->api_version;
	const char *tail;
	char *path, *full;

	if (ver && !query_value_safe(ver)) {
		snprintf(err, errlen, "backend '%s': api_version has characters "
		    "that cannot go in a URL", b->name);
		return NULL;
	}
	if (!azure_is_foundry(b)) {
		path = adapter_openai_path(b, ep);
		if (ver == NULL)
			return path;
		full = xasprintf("%s?api-version=%s", path, ver);
		free(path);
		return full;
	}
	switch (ep) {
	case EP_CHAT:
		tail = "/chat/completions";
		break;
	case EP_EMBEDDINGS:
		tail = "/embeddings";
		break;
	default:
		snprintf(err, errlen, "backend '%s' (Azure AI Foundry) has no "
		    "endpoint for this request", b->name);
		return NULL;
	}
	return xasprintf("%s%s%s?api-version=%s", bp,
	    ends_with(bp, "/models") ? "" : "/models", tail,
	    ver ? ver : AZURE_FOUNDRY_API_VERSION);
}

static int
build_azure(const struct fwd_ctx *c, struct evbuffer *out, char *err,
    size_t errlen)
{
	const struct backend *b = c->b;
	char *path = NULL, *body = NULL, *auth = NULL;
	size_t blen = 0;

	switch (b->auth.type) {
	case AUTH_API_KEY:
	case AUTH_BEARER:
		if (b->auth.key == NULL) {
			snprintf(err, errlen, "credentials for backend '%s' are "
			    "missing (%s)", b->name, b->auth.key_env ?
			    b->auth.key_env : "key");
			return -1;
		}
		auth = b->auth.type == AUTH_API_KEY ?
		    xasprintf("api-key: %s\r\n", b->auth.key) :
		    xasprintf("Authorization: Bearer %s\r\n", b->auth.key);
		break;
	case AUTH_NONE:
		break;
	default:
		snprintf(err, errlen, "backend '%s': kind azure takes auth "
		    "api-key, bearer or none", b->name);
		return -1;
	}
	path = azure_path(b, c->ep, err, errlen);
	if (path == NULL)
		goto fail;
	/* Serverless endpoints serve one model and ignore "model"; Foundry
	 * routes on it (the deployment name). */
	if (json_object_set_new(c->body, "model", json_string(c->model_id)) < 0 ||
	    (body = adapter_dump(c->body, &blen)) == NULL) {
		snprintf(err, errlen, "cannot serialise the request");
		goto fail;
	}
	adapter_write_head(c, out, "POST", path, auth, blen);
	evbuffer_add(out, body, blen);
	if (auth)
		OPENSSL_cleanse(auth, strlen(auth));
	free(auth);
	free(path);
	free(body);
	return 0;
fail:
	if (auth)
		OPENSSL_cleanse(auth, strlen(auth));
	free(auth);
	free(path);
	free(body);
	return -1;
}

const struct adapter adapter_azure = {
	.kind = "azure",
	.build = build_azure,
};
