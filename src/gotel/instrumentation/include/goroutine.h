/*
 * Goroutine identity. State is keyed by goid, not by the g pointer: g structs
 * are recycled when goroutines exit, goids never are, so a stale entry can
 * never be mistaken for a new goroutine's.
 */
#pragma once

#include "go_abi.h"
#include "go_types.h"

volatile const __u64 off_g_goid = GOTEL_OFFSET_ABSENT;
volatile const __u64 off_g_parent_goid = GOTEL_OFFSET_ABSENT; /* Go 1.21+ */

static __always_inline __u64 goroutine_id(__u64 g)
{
	return read_ptr_field(g, off_g_goid);
}

/* The goroutine whose `go` statement started g; 0 when unknown. */
static __always_inline __u64 goroutine_parent_id(__u64 g)
{
	return read_ptr_field(g, off_g_parent_goid);
}
