/* Return codes: nginx's small vocabulary, for functions whose callers must
 * tell more than "worked" from "failed".
 *
 * Syscall wrappers keep returning negative errno values (-ENOMEM,
 * -ECONNREFUSED): the reason is the result. These names are for the other
 * functions. IG_AGAIN is -EAGAIN itself, so a caller tests one value
 * whichever convention the callee follows; IG_DONE and IG_DECLINED lie
 * below the errno range (Linux errno values are under 4096), so a function
 * may return them next to -errno values without ambiguity. */
#ifndef IG_CORE_RET_H
#define IG_CORE_RET_H

#include <errno.h>
#include <stdbool.h>

/* It worked; go on. */
#define IG_OK 0
/* It failed and the reason has been reported (logged, or written where the
 * function's comment says); the caller only unwinds. */
#define IG_ERROR (-1)
/* Not now: the operation would block or needs more input; call again when
 * the descriptor is ready or more bytes have arrived. */
#define IG_AGAIN (-EAGAIN)
/* Finished early and successfully: nothing more to do (a request already
 * answered, `--help` already printed). Not an error, but the caller must not
 * go on as after IG_OK. */
#define IG_DONE (-4096)
/* Not mine: the handler does not take this input and someone else should
 * (the next handler in a chain, or the caller's default, such as the
 * standard "invalid value" message of the flag parser). */
#define IG_DECLINED (-4097)

/* A failure for want of resources (descriptors, memory, kernel buffers)
 * rather than of the input: the same work may succeed when tried again.
 * Takes errno or -errno. */
static inline bool ig_err_resource(int err)
{
	if (err < 0)
		err = -err;
	return err == EMFILE || err == ENFILE || err == ENOMEM || err == ENOBUFS;
}

#endif
