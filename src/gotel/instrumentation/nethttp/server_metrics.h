/*
 * http.server.request.duration for every request, sampled or not: method,
 * route (a router's, else the ServeMux pattern; never the path), status and
 * scheme. Included by server.bpf.c after the helpers it uses.
 */
#pragma once

#include "../include/red_metrics.h"

/* red_key.outcome bits of the net/http server (probe.py reads them). */
#define HTTP_SERVER_TLS 1

/* The ServeMux pattern, as read_route reads it, into the key's shorter field. */
static __always_inline void read_metric_route(__u64 request, char *dst)
{
	switch (route_source) {
	case HTTP_ROUTE_PATTERN_FIELD:
		read_go_string_n(request, off_request_pattern, dst, RED_NAME_SIZE);
		break;
	case HTTP_ROUTE_PAT_POINTER:
		read_go_string_n(read_ptr_field(request, off_request_pat), off_pattern_str, dst,
				 RED_NAME_SIZE);
		break;
	}
}

static __always_inline void record_server_metrics(struct server_request *req, __u64 goid)
{
	struct red_key *key = red_key_begin();
	struct http_route *routed;
	__u64 request = req->request;

	if (!key)
		return;
	key->code = response_status(req->response, req->writer, request);
	if (read_ptr_field(request, off_request_tls))
		key->outcome = HTTP_SERVER_TLS;
	read_go_string(request, off_request_method, key->word);
	routed = process_lookup(&shared_http_routes, goid);
	if (routed && routed->len)
		red_copy(key->name, routed->route, routed->len, RED_NAME_SIZE);
	else
		read_metric_route(request, key->name);
	red_record(key, bpf_ktime_get_boot_ns() - req->start_ns);
}
