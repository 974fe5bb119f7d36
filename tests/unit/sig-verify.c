/* SPDX-License-Identifier: Apache-2.0 */
/* sig/: sign then verify with real gpg keys in a temporary GNUPGHOME; a
 * changed byte, an unknown key, a signer not allowed, subkey pins, bad key
 * material, gpg that cannot be run (no descriptor) as "could not check" in
 * both verifying and loading a keyring, and the private home removed
 * afterwards. */
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sig/sig.h"
#include "tests/tap.h"

static char home[256], tmp[300];

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char *cmd;
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&cmd, fmt, ap);
	va_end(ap);
	if (r < 0)
		bail("out of memory");
	r = system(cmd);
	free(cmd);
	return r;
}

/* The fingerprint of the first key (or subkey index n) matching uid. */
static char *fpr_of(const char *uid, int n)
{
	char cmd[1024], line[256];
	FILE *p;

	snprintf(cmd, sizeof(cmd),
		 "GNUPGHOME=%s gpg --batch --with-colons --list-keys '%s' 2>/dev/null | "
		 "awk -F: '/^fpr/ {print $10}' | sed -n %dp",
		 home, uid, n + 1);
	if (!(p = popen(cmd, "r")) || !fgets(line, sizeof(line), p))
		bail("no fingerprint for %s", uid);
	pclose(p);
	line[strcspn(line, "\n")] = '\0';
	return strdup(line);
}

static void gen_key(const char *uid)
{
	if (sh("GNUPGHOME=%s gpg --batch --quiet --pinentry-mode loopback --passphrase '' "
	       "--quick-gen-key '%s <%s@example.invalid>' ed25519 sign 0 2>/dev/null",
	       home, uid, uid) != 0)
		bail("gpg could not make a key");
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "re");
	char *buf = malloc(1 << 16);
	*len = f ? fread(buf, 1, (1 << 16) - 1, f) : 0;
	if (f)
		fclose(f);
	buf[*len] = '\0';
	return buf;
}

/* The private GnuPG homes of run pid in tmp. */
static int homes_of(pid_t pid)
{
	char tag[64];
	int n = 0;
	DIR *d = opendir(tmp);
	struct dirent *de;
	snprintf(tag, sizeof(tag), "-gnupg.%ld.", (long)pid);
	while (d && (de = readdir(d)))
		n += strstr(de->d_name, tag) != NULL;
	if (d)
		closedir(d);
	return n;
}

/* on: the soft descriptor limit just above the lowest free descriptor, so
 * that one is left; off: the limit as it was. */
static void one_descriptor_left(bool on)
{
	static struct rlimit was;
	if (!on) {
		setrlimit(RLIMIT_NOFILE, &was);
		return;
	}
	int lowest = dup(0);
	if (lowest < 0 || getrlimit(RLIMIT_NOFILE, &was) < 0)
		bail("dup or getrlimit: %m");
	close(lowest);
	struct rlimit low = {(rlim_t)lowest + 1, was.rlim_max};
	if (setrlimit(RLIMIT_NOFILE, &low) < 0)
		bail("setrlimit: %m");
}

/* Loads keys in a child process with one descriptor left; msg: "r why".
 * Returns the child's pid (its run is gone when this returns). */
static pid_t load_starved(const char *keys, char *msg, size_t len)
{
	int pfd[2];
	char *why = NULL;
	if (pipe(pfd) < 0)
		bail("pipe: %m");
	pid_t child = fork();
	if (child == 0) {
		struct sig_keyring *k = NULL;
		close(pfd[0]);
		one_descriptor_left(true);
		int r = sig_keyring_open(keys, NULL, 0, tmp, &k, &why);
		one_descriptor_left(false);
		dprintf(pfd[1], "%d %s", r, why ? why : "");
		_exit(0);
	}
	close(pfd[1]);
	ssize_t got = child > 0 ? read(pfd[0], msg, len - 1) : -1;
	msg[got > 0 ? got : 0] = '\0';
	close(pfd[0]);
	if (child > 0)
		waitpid(child, NULL, 0);
	return child;
}

static int verify(const char *keys, char *const *signers, size_t n, const char *data,
		  const char *asc, size_t asclen, char **fpr, char **why)
{
	struct sig_keyring *k = NULL;
	char *kwhy = NULL;
	int r = sig_keyring_open(keys, signers, n, tmp, &k, &kwhy);

	if (r < 0) {
		*why = kwhy;
		*fpr = NULL;
		return r;
	}
	r = sig_verify_detached(k, data, strlen(data), asc, asclen, fpr, why);
	sig_keyring_free(k);
	return r;
}

int main(void)
{
	const char *base = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	const char *data = "{\"catalog\":1,\"generation\":3}";
	char keys_a[400], keys_ab[400], keys_c[400], junk[400], path[400];
	char *sig = NULL, *why = NULL, *fpr = NULL;
	size_t siglen = 0;
	struct sig_signer *s = NULL;
	int r;

	if (system("gpg --version >/dev/null 2>&1") != 0)
		skip_all("gpg is not installed");
	snprintf(home, sizeof(home), "%s/sig-verify.XXXXXX", base);
	if (!mkdtemp(home))
		bail("mkdtemp: %m");
	snprintf(tmp, sizeof(tmp), "%s/tmp", home);
	char gh[300];
	snprintf(gh, sizeof(gh), "%s/gnupg", home);
	mkdir(tmp, 0700);
	mkdir(gh, 0700);
	strcpy(home, gh); /* GNUPGHOME from here on; its parent is the scratch dir */

	gen_key("Alice");
	gen_key("Bob");
	gen_key("Carol");
	/* Carol: two signing subkeys besides her primary key. */
	char *fa = fpr_of("Alice", 0), *fb = fpr_of("Bob", 0), *fc = fpr_of("Carol", 0);
	if (sh("GNUPGHOME=%s gpg --batch --quiet --pinentry-mode loopback --passphrase '' "
	       "--quick-add-key %s ed25519 sign 0 2>/dev/null && "
	       "GNUPGHOME=%s gpg --batch --quiet --pinentry-mode loopback --passphrase '' "
	       "--quick-add-key %s ed25519 sign 0 2>/dev/null",
	       home, fc, home, fc) != 0)
		bail("gpg could not add subkeys");
	char *fc1 = fpr_of("Carol", 1), *fc2 = fpr_of("Carol", 2);
	snprintf(keys_a, sizeof(keys_a), "%s/../a.asc", home);
	snprintf(keys_ab, sizeof(keys_ab), "%s/../ab.asc", home);
	snprintf(keys_c, sizeof(keys_c), "%s/../c.asc", home);
	snprintf(junk, sizeof(junk), "%s/../junk.asc", home);
	if (sh("GNUPGHOME=%s gpg --batch --armor --export %s >%s 2>/dev/null", home, fa, keys_a) ||
	    sh("GNUPGHOME=%s gpg --batch --armor --export %s %s >%s 2>/dev/null", home, fa, fb,
	       keys_ab) ||
	    sh("GNUPGHOME=%s gpg --batch --armor --export %s >%s 2>/dev/null", home, fc, keys_c) ||
	    sh("echo 'not a key' >%s", junk))
		bail("gpg could not export keys");

	/* Sign with Alice, verify against Alice's public key. */
	r = sig_signer_open(home, fa, &s, &why);
	is_int(r, 0, "sig_signer_open takes Alice's secret key (%s)", why ? why : "");
	ok(s && strcmp(sig_signer_fpr(s), fa) == 0, "the signer names Alice's fingerprint");
	r = sig_sign(s, data, strlen(data), &sig, &siglen, &why);
	is_int(r, 0, "sig_sign makes a signature");
	ok(sig && strstr(sig, "-----BEGIN PGP SIGNATURE-----"), "it is armored");
	sig_signer_free(s);

	r = verify(keys_a, NULL, 0, data, sig, siglen, &fpr, &why);
	is_int(r, 0, "the signature verifies against Alice's key");
	ok(fpr && strcmp(fpr, fa) == 0, "the signer's fingerprint is Alice's");
	free(fpr);
	free(why);

	/* Out of descriptors (one left: gpg needs pipes): could not check, not a
	 * verdict; with descriptors back the same signature verifies. */
	{
		/* a keyring (a key file, a directory of them) loaded with one
		 * descriptor left, in a child: it cannot remove its private home
		 * then either; the next load removes it (the child's run is gone) */
		char msg[512], kdir[420];
		snprintf(kdir, sizeof(kdir), "%s/../keydir", home);
		if (sh("mkdir -p %s && cp %s %s/", kdir, keys_a, kdir) != 0)
			bail("cannot make a keyring directory");
		pid_t c1 = load_starved(keys_a, msg, sizeof(msg));
		ok(strncmp(msg, "-24 ", 4) == 0,
		   "out of descriptors, a keyring file cannot be loaded: -EMFILE");
		ok(strstr(msg, "cannot be read (Too many open files)") &&
			   !strstr(msg, "no usable public key"),
		   "saying why, not that it holds no key: %s", msg);
		pid_t c2 = load_starved(kdir, msg, sizeof(msg));
		ok(strncmp(msg, "-24 ", 4) == 0 && strstr(msg, "(Too many open files)"),
		   "nor a keyring directory: %s", msg);
		is_int(homes_of(c1) + homes_of(c2), 2, "their private homes are left behind");
		struct sig_keyring *k = NULL;
		r = sig_keyring_open(keys_a, NULL, 0, tmp, &k, &why);
		if (r < 0)
			bail("cannot open Alice's keyring: %s", why ? why : "");
		free(why);
		is_int(homes_of(c1) + homes_of(c2), 0, "and removed by the next load");
		one_descriptor_left(true);
		r = sig_verify_detached(k, data, strlen(data), sig, siglen, &fpr, &why);
		one_descriptor_left(false);
		is_int(r, -EMFILE, "out of descriptors: -EMFILE, not -AG_EDIGEST");
		ok(why && strstr(why, "cannot be checked"), "saying so: %s", why ? why : "");
		ok(!fpr, "and no signer");
		free(why);
		r = sig_verify_detached(k, data, strlen(data), sig, siglen, &fpr, &why);
		is_int(r, 0, "descriptors back: the same signature verifies");
		free(fpr);
		free(why);
		sig_keyring_free(k);
	}

	/* One byte changed. */
	char *bad = strdup(data);
	bad[5] ^= 1;
	r = verify(keys_a, NULL, 0, bad, sig, siglen, &fpr, &why);
	is_int(r, -AG_EDIGEST, "a changed byte fails");
	ok(why && strstr(why, "does not match"), "and says so: %s", why ? why : "");
	free(why);
	free(bad);

	/* Pinned signer: Alice allowed, Bob not. */
	char *pin_a[] = {fa}, *pin_b[] = {fb};
	r = verify(keys_ab, pin_a, 1, data, sig, siglen, &fpr, &why);
	is_int(r, 0, "--signer Alice accepts Alice's signature");
	free(fpr);
	free(why);
	r = verify(keys_ab, pin_b, 1, data, sig, siglen, &fpr, &why);
	is_int(r, -AG_EDIGEST, "--signer Bob refuses Alice's signature");
	ok(why && strstr(why, "not an allowed signer"), "as not an allowed signer: %s",
	   why ? why : "");
	free(why);
	free(sig);

	/* Wrong key: signed by Bob, keyring holds Alice only. */
	r = sig_signer_open(home, fb, &s, &why);
	if (r == 0)
		r = sig_sign(s, data, strlen(data), &sig, &siglen, &why);
	sig_signer_free(s);
	is_int(r, 0, "Bob signs");
	r = verify(keys_a, NULL, 0, data, sig, siglen, &fpr, &why);
	is_int(r, -AG_EDIGEST, "Bob's signature fails against Alice's keyring");
	ok(why && strstr(why, "not in the trusted keyring"), "an untrusted key: %s",
	   why ? why : "");
	free(why);
	free(sig);

	/* Subkey pins: sign with Carol's first subkey explicitly. */
	snprintf(path, sizeof(path), "%s/../data", home);
	FILE *f = fopen(path, "we");
	fputs(data, f);
	fclose(f);
	if (sh("GNUPGHOME=%s gpg --batch --quiet --pinentry-mode loopback --passphrase '' "
	       "--armor --local-user '%s!' --detach-sign -o %s.asc %s 2>/dev/null",
	       home, fc1, path, path) != 0)
		bail("gpg could not sign with a subkey");
	char ascpath[420];
	snprintf(ascpath, sizeof(ascpath), "%s.asc", path);
	sig = slurp(ascpath, &siglen);
	char *pin_c[] = {fc}, *pin_c1[] = {fc1}, *pin_c2[] = {fc2};
	r = verify(keys_c, pin_c, 1, data, sig, siglen, &fpr, &why);
	is_int(r, 0, "a primary pin allows its signing subkey");
	ok(fpr && strcmp(fpr, fc) == 0, "the primary fingerprint is reported");
	free(fpr);
	free(why);
	r = verify(keys_c, pin_c1, 1, data, sig, siglen, &fpr, &why);
	is_int(r, 0, "a pin of the subkey that signed allows it");
	free(fpr);
	free(why);
	r = verify(keys_c, pin_c2, 1, data, sig, siglen, &fpr, &why);
	is_int(r, -AG_EDIGEST, "a pin of another subkey refuses it");
	free(why);
	free(sig);

	/* Bad key material and keys that cannot sign. */
	struct sig_keyring *k = NULL;
	r = sig_keyring_open(junk, NULL, 0, tmp, &k, &why);
	ok(r < 0 && why && strstr(why, "no usable public key"),
	   "a file without keys is refused: %s", why ? why : "");
	free(why);
	r = sig_signer_open(home, "0123456789ABCDEF0123456789ABCDEF01234567", &s, &why);
	ok(r < 0 && !s && why && strstr(why, "has no secret key"),
	   "signing with a missing key is refused: %s", why ? why : "");
	free(why);
	r = verify(keys_a, NULL, 0, data, "not a signature", 15, &fpr, &why);
	ok(r == -AG_EDIGEST && why && strstr(why, "no OpenPGP signature"),
	   "garbage is not a signature: %s", why ? why : "");
	free(why);

	/* The private homes are gone. */
	ok(sh("[ -z \"$(ls -A %s)\" ]", tmp) == 0, "no private GnuPG home is left behind");

	sh("GNUPGHOME=%s gpgconf --kill gpg-agent 2>/dev/null", home);
	home[strlen(home) - strlen("/gnupg")] = '\0';
	sh("rm -rf %s", home);
	free(fa);
	free(fb);
	free(fc);
	free(fc1);
	free(fc2);
	return done_testing();
}
