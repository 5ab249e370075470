/*
 * gauth.h - OAuth2 access tokens from a Google service account (the
 * `google-service-account` auth of kind `vertex`): an RS256-signed JWT
 * (iss = client_email, scope = cloud-platform, aud = token_uri, iat, exp)
 * exchanged at the file's token_uri with
 * grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer.
 *
 * One token source per credentials file, shared by every worker and kept
 * across reloads. Tokens are cached and refreshed ahead of expiry; at most
 * one refresh per source is in flight; requests that need a token while
 * none is valid wait without blocking their loop and are woken through
 * their worker's mailbox.
 */
#ifndef SOVGATE_GAUTH_H
#define SOVGATE_GAUTH_H

#include <stddef.h>
#include <stdint.h>

#include "adapter.h"

#define GAUTH_SCOPE "https://www.googleapis.com/auth/cloud-platform"
#define GAUTH_DEFAULT_TOKEN_URI "https://oauth2.googleapis.com/token"

struct gauth;

/* The token source for a backend's credentials (credentials_file, or a
 * service-account JSON document already loaded into auth.key). NULL if
 * the backend names none. Thread-safe. */
struct gauth *gauth_for(const struct backend *b);

/* 1: a token is valid now (a refresh may start in the background when it
 * nears expiry). 0: ready(arg, ok, err) will run later on mb's loop,
 * exactly once unless gauth_cancel(*handle) is called first. -1: the
 * token endpoint failed moments ago (err says why; no secret in it). */
int gauth_prepare(struct gauth *g, struct mailbox *mb, adapter_ready_fn ready,
    void *arg, void **handle, char *err, size_t errlen);
/* On the loop that prepare was called on. */
void gauth_cancel(void *handle);
/* A copy of the current access token (caller wipes and frees), or NULL
 * if there is no valid one. */
char *gauth_token(struct gauth *g);
/* Forget the cached token (tests; a backend answering 401). */
void gauth_invalidate(struct gauth *g);
/* Waits for refreshes in flight and frees every source (exit, tests). */
void gauth_shutdown(void);

/* ---- building blocks (exposed for tests) ---- */

/* The signed assertion for a service-account JSON document. New string,
 * or NULL with err. */
char *gauth_make_jwt(const char *sa_json, int64_t now_s, char *err,
    size_t errlen);
/* base64url without padding. New string. */
char *gauth_b64url(const void *p, size_t n);

#endif
