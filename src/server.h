/*
 * server.h - `sovgate serve`: worker threads, each with its own event
 * loop, SO_REUSEPORT listener, DNS resolver, upstream pool and scan
 * buffers; the main thread handles signals (SIGHUP reload, SIGTERM/SIGINT
 * drain) and owns the decision-log writer.
 */
#ifndef SOVGATE_SERVER_H
#define SOVGATE_SERVER_H

/* Runs until drained. Returns the process exit code. */
int server_run(const char *config_path);

#endif
