/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A damaged index must give an error, never a crash (issue 11 #4).  LMDB
 * trusts the bytes of data.mdb: a damaged page can send it through a wild
 * pointer (SIGSEGV), past the end of the file (SIGBUS) or into one of its
 * assertions (abort).  Every stretch of code that reads the map (LMDB calls
 * and the copying of values out of it) runs under a guard: a per-thread
 * sigjmp_buf, armed only for that stretch.  A fault while a guard is armed
 * on the faulting thread jumps back to it and becomes -AG_EINDEX; a fault
 * anywhere else goes to the handler that was installed before ours (or the
 * default action), exactly as if we were not there.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>

#include "store/internal.h"

static __thread struct ag_guard *guard_top;
static struct sigaction old_bus, old_segv, old_abrt;
static pthread_mutex_t install_lock = PTHREAD_MUTEX_INITIALIZER;

static struct sigaction *old_action(int sig)
{
	return sig == SIGBUS ? &old_bus : sig == SIGSEGV ? &old_segv : &old_abrt;
}

/* Not ours: behave as the previous disposition would. */
static void chain(int sig, siginfo_t *si, void *uc)
{
	struct sigaction *o = old_action(sig);
	if (o->sa_flags & SA_SIGINFO) {
		if (o->sa_sigaction) {
			o->sa_sigaction(sig, si, uc);
			return;
		}
	} else if (o->sa_handler != SIG_DFL && o->sa_handler != SIG_IGN) {
		o->sa_handler(sig);
		return;
	}
	/* Default (or ignored, which a fault cannot be): die of this signal. */
	struct sigaction dfl;
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	sigemptyset(&dfl.sa_mask);
	sigaction(sig, &dfl, NULL);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, sig);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	raise(sig);
}

static void on_fault(int sig, siginfo_t *si, void *uc)
{
	struct ag_guard *g = guard_top;
	if (g) {
		guard_top = g->prev;
		siglongjmp(g->jb, sig);
	}
	chain(sig, si, uc);
}

/* LMDB's assertion callback runs before it calls abort(): leave from here
 * when guarded, so abort() (and its lock) is never entered. */
static void on_assert(MDB_env *env, const char *msg)
{
	(void)env, (void)msg;
	struct ag_guard *g = guard_top;
	if (g) {
		guard_top = g->prev;
		siglongjmp(g->jb, SIGABRT);
	}
}

/* Ours in front of whatever is there now; what was there is chained to.
 * Checked at every index open, so a program that installs its own handler
 * after opening a store gets the guard back at the next open. */
static void install(void)
{
	static const int sigs[] = {SIGBUS, SIGSEGV, SIGABRT};
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_fault;
	/* SA_NODEFER: the jump out leaves the signal mask as it was, so the
	 * guard needs no sigprocmask on the fast path. */
	sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		struct sigaction cur;
		if (sigaction(sigs[i], NULL, &cur) < 0)
			continue;
		if ((cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == on_fault)
			continue;
		*old_action(sigs[i]) = cur;
		sigaction(sigs[i], &sa, NULL);
	}
}

void ag_guard_install(MDB_env *env)
{
	pthread_mutex_lock(&install_lock);
	install();
	pthread_mutex_unlock(&install_lock);
	if (env)
		mdb_env_set_assert(env, on_assert);
}

void ag_guard_push(struct ag_guard *g)
{
	g->prev = guard_top;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	guard_top = g;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
}

void ag_guard_pop(struct ag_guard *g)
{
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	if (guard_top == g)
		guard_top = g->prev;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
}

int ag_read_guarded(ag_store *s, int (*fn)(MDB_txn *txn, void *arg), void *arg)
{
	MDB_txn *volatile txn = NULL;
	struct ag_guard g;
	ag_guard_push(&g);
	if (sigsetjmp(g.jb, 0)) {
		/* Only the reader slot (in lock.mdb, not the damaged map) is
		 * touched to end the transaction. */
		if (txn)
			mdb_txn_abort(txn);
		return -AG_EINDEX;
	}
	MDB_txn *t;
	int r = ag_rtxn_begin(s, &t);
	if (r == 0) {
		txn = t;
		r = fn(t, arg);
		txn = NULL;
		mdb_txn_abort(t);
	}
	ag_guard_pop(&g);
	return r;
}
