/*
 * tlsserver.h - TLS on the data listener: OpenSSL 3 server contexts built
 * at load time (they read the certificate and key, so never on an event
 * loop) and attached to the snapshot, so a SIGHUP brings a new certificate
 * to new connections while established ones keep theirs.
 */
#ifndef SOVGATE_TLSSERVER_H
#define SOVGATE_TLSSERVER_H

#include "diag.h"
#include "snapshot.h"

/* Builds s->tls_ctx from s->cfg->tls_cert/tls_key when set. 0 on success
 * (or no TLS configured); -1 with diags (expired or mismatched pair). */
int tlsserver_prepare(struct snapshot *s, struct diags *d);

#endif
