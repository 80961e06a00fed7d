/* Go's amd64 register ABI (Go >= 1.17), seen from a uprobe. */
#pragma once

#include <asm/ptrace.h> /* struct pt_regs with user-space register names */

/* Integer arguments in order; only valid at a function's entry instruction. */
#define GO_PARAM1(ctx) ((ctx)->rax)
#define GO_PARAM2(ctx) ((ctx)->rbx)
#define GO_PARAM3(ctx) ((ctx)->rcx)
#define GO_PARAM4(ctx) ((ctx)->rdi)
#define GO_PARAM5(ctx) ((ctx)->rsi)
#define GO_PARAM6(ctx) ((ctx)->r8)
#define GO_PARAM7(ctx) ((ctx)->r9)
#define GO_PARAM8(ctx) ((ctx)->r10)
#define GO_PARAM9(ctx) ((ctx)->r11)

/* Go keeps the running goroutine's g in R14 while in Go code. */
#define GO_G(ctx) ((ctx)->r14)

/*
 * ...and in thread-local storage, for code that runs outside Go's own (a socket program on
 * the goroutine's thread): runtime.tlsg, 8 bytes below the FS base on linux/amd64. The
 * executable's TLS block ends at FS and holds only tlsg (PT_TLS memsz 8, internal or external
 * linking) unless C code linked in declares thread-locals of its own.
 */
#define GO_G_TLS_OFFSET (-8)

/* runtime.itab: inter, _type, hash (uint32) and padding, then the method table (Go 1.21-1.26). */
#define GO_ITAB_FUN0 24
