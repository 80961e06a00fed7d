/*
 * http.client.request.duration for every round trip, sampled or not: method,
 * server address and port (the URL's host), status, and whether the round
 * trip failed. Included by client.bpf.c; reads the results roundTrip returns.
 */
#pragma once

#include "../include/red_metrics.h"

/* red_key.outcome bits of the net/http client (probe.py reads them). */
#define HTTP_CLIENT_FAILED 1 /* roundTrip returned an error */
#define HTTP_CLIENT_HTTPS 2

static __always_inline void record_client_metrics(struct pt_regs *ctx, struct client_request *req)
{
	struct red_key *key = red_key_begin();
	__u64 request = req->request, url, response;
	char scheme[8] = {};

	if (!key)
		return;
	/* Results: (*Response, error) in RAX and RBX:RCX. */
	response = GO_PARAM1(ctx);
	if (GO_PARAM2(ctx))
		key->outcome |= HTTP_CLIENT_FAILED;
	key->code = response ? read_ptr_field(response, off_response_status_code) : 0;
	read_go_string(request, off_request_method, key->word);
	url = read_ptr_field(request, off_request_url);
	/* The host with its port, if the URL has one: probe.py splits it. */
	read_go_string(url, off_url_host, key->address);
	if (read_go_string(url, off_url_scheme, scheme) == 5 && scheme[4] == 's')
		key->outcome |= HTTP_CLIENT_HTTPS;
	red_record(key, bpf_ktime_get_boot_ns() - req->start_ns);
}
