/*
 * adapter_openai.c - kinds `openai` (self-run OpenAI-compatible servers:
 * vLLM, llama.cpp, Ollama, TGI) and `mistral` (la Plateforme). Both speak
 * OpenAI's wire format, so the answer passes through unchanged; only the
 * model is rewritten and the backend's credentials added.
 */
#include "adapter.h"
#include "jsonout.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <openssl/crypto.h>

static int
build_common(const struct fwd_ctx *c, struct evbuffer *out, int mistral,
    char *err, size_t errlen)
{
	const struct backend *b = c->b;
	char *path = NULL, *body = NULL, *auth = NULL;
	size_t blen = 0;
	struct sb model = { NULL, 0, 0 };

	if (!mistral && c->raw != NULL) {
		/* The client's text with the model replaced: nothing else
		 * changes, so no need to write the whole tree out again. */
		if (json_out_string(&model, c->model_id,
		    strlen(c->model_id)) < 0)
			goto fail_json;
		blen = c->raw_len - c->model_len + model.n;
	} else {
		if (json_object_set_new(c->body, "model",
		    json_string(c->model_id)) < 0)
			goto fail_json;
		if (mistral)
			adapter_mistral_fields(c->body);
		body = adapter_dump(c->body, &blen);
		if (body == NULL)
			goto fail_json;
	}
	path = adapter_openai_path(b, c->ep);
	switch (b->auth.type) {
	case AUTH_BEARER:
		if (b->auth.key == NULL)
			goto fail_cred;
		auth = xasprintf("Authorization: Bearer %s\r\n", b->auth.key);
		break;
	case AUTH_API_KEY:
		if (b->auth.key == NULL)
			goto fail_cred;
		auth = xasprintf("api-key: %s\r\n", b->auth.key);
		break;
	case AUTH_NONE:
		break;
	default:
		snprintf(err, errlen, "auth type not supported by kind %s",
		    backend_kind_name(b->kind));
		goto fail;
	}
	adapter_write_head(c, out, "POST", path, auth, blen);
	if (body != NULL) {
		evbuffer_add(out, body, blen);
	} else {
		evbuffer_add(out, c->raw, c->model_at);
		evbuffer_add(out, model.p, model.n);
		evbuffer_add(out, c->raw + c->model_at + c->model_len,
		    c->raw_len - c->model_at - c->model_len);
	}
	/* The header held a secret: do not leave it in freed memory. */
	if (auth) {
		OPENSSL_cleanse(auth, strlen(auth));
	}
	free(auth);
	free(path);
	free(body);
	free(model.p);
	return 0;
fail_cred:
	snprintf(err, errlen, "credentials for backend '%s' are missing",
	    b->name);
	goto fail;
fail_json:
	snprintf(err, errlen, "cannot serialise the request");
fail:
	free(auth);
	free(path);
	free(body);
	free(model.p);
	return -1;
}

static int
build_openai(const struct fwd_ctx *c, struct evbuffer *out, char *err,
    size_t errlen)
{
	return build_common(c, out, 0, err, errlen);
}

static int
build_mistral(const struct fwd_ctx *c, struct evbuffer *out, char *err,
    size_t errlen)
{
	return build_common(c, out, 1, err, errlen);
}

const struct adapter adapter_openai = {
	.kind = "openai",
	.build = build_openai,
};

const struct adapter adapter_mistral = {
	.kind = "mistral",
	.build = build_mistral,
};
