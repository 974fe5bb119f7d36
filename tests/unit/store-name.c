/* SPDX-License-Identifier: Apache-2.0 */
/* Model references -> path form, and back for display. */
#include <errno.h>

#include "tests/unit/store-common.h"

static void parses(const char *in, const char *want)
{
	char *out = NULL;
	int r = ag_name_parse(in, strlen(in), &out);
	ok(r == 0 && !strcmp(out, want), "'%s' -> '%s' (got '%s')", in, want, out ? out : "-");
	free(out);
}

static void refuses(const char *in)
{
	char *out = NULL;
	is_int(ag_name_parse(in, strlen(in), &out), -AG_EBADNAME, "'%s' refused", in);
	free(out);
}

static void displays(const char *path, const char *want)
{
	char *d = ag_name_display(path);
	ok(d && !strcmp(d, want), "'%s' displays as '%s' (got '%s')", path, want, d ? d : "-");
	free(d);
}

int main(void)
{
	parses("llama3.2", "registry.ollama.ai/library/llama3.2/latest");
	parses("llama3.2:3b", "registry.ollama.ai/library/llama3.2/3b");
	parses("me/mymodel:v1", "registry.ollama.ai/me/mymodel/v1");
	parses("hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M",
	       "hf.co/bartowski/Llama-3.2-1B-Instruct-GGUF/Q4_K_M");
	parses("localhost:5000/me/mymodel:latest", "localhost:5000/me/mymodel/latest");
	parses("registry.ollama.ai/library/llama3.1/8b", "registry.ollama.ai/library/llama3.1/8b");
	refuses("");
	refuses("../etc/passwd");
	refuses("a/../b:c");
	refuses("a//b");
	refuses("a/b/c/d/e");
	refuses("model:");
	refuses("mo del");
	refuses(".hidden");
	refuses("-rf");
	refuses("ns:x/model");
	displays("registry.ollama.ai/library/llama3.2/3b", "llama3.2:3b");
	displays("registry.ollama.ai/me/m/latest", "me/m:latest");
	displays("hf.co/a/b/Q4", "hf.co/a/b:Q4");
	return done_testing();
}
