// SPDX-License-Identifier: Apache-2.0
// A real llama.cpp client (node-llama-cpp): loads a GGUF model by path with
// mmap on, generates a fixed number of tokens greedily and prints them.
//
//   node generate.mjs [--tokens N] [--prompt TEXT] [--no-mmap] [--time] MODEL
//
// Output on stdout, one record per line:
//   TOKENS <id> <id> ...          the generated token ids
//   TEXT <JSON string>            their detokenized text
//   TIME load_ms=<n> first_token_ms=<n>   (with --time)
// Exit status: 0 generated; 1 the model could not be loaded or evaluated
// (one sentence on stderr naming the file and the reason); 2 usage error.
// Works offline: it only uses the prebuilt binary from @node-llama-cpp/linux-x64.
import { getLlama, LlamaLogLevel } from "node-llama-cpp";

function usage(msg) {
	process.stderr.write(`generate.mjs: ${msg}\n` +
		"usage: node generate.mjs [--tokens N] [--prompt TEXT] [--no-mmap] [--time] MODEL\n");
	process.exit(2);
}

function parseArgs(argv) {
	const opt = { tokens: 16, prompt: "The quick brown fox", mmap: true, time: false, model: null };
	for (let i = 0; i < argv.length; i++) {
		const a = argv[i];
		if (a === "--tokens") {
			opt.tokens = Number.parseInt(argv[++i], 10);
			if (!(opt.tokens > 0 && opt.tokens <= 4096))
				usage("--tokens wants a number from 1 to 4096");
		} else if (a === "--prompt") {
			opt.prompt = argv[++i];
			if (opt.prompt === undefined)
				usage("--prompt wants a text");
		} else if (a === "--no-mmap") {
			opt.mmap = false;
		} else if (a === "--time") {
			opt.time = true;
		} else if (a.startsWith("--") || opt.model !== null) {
			usage(`unexpected argument ${a}`);
		} else {
			opt.model = a;
		}
	}
	if (opt.model === null)
		usage("no model file given");
	return opt;
}

// Greedy decoding: temperature 0, no repeat penalty, no sampling randomness.
async function generate(model, opt) {
	const context = await model.createContext({ contextSize: 128, threads: 2 });
	const sequence = context.getSequence();
	const prompt = model.tokenize(opt.prompt);
	const out = [];
	let firstTokenAt = null;
	for await (const token of sequence.evaluate(prompt, { temperature: 0 })) {
		if (firstTokenAt === null)
			firstTokenAt = performance.now();
		out.push(token);
		if (out.length >= opt.tokens)
			break;
	}
	const text = model.detokenize(out);
	await context.dispose();
	return { out, text, firstTokenAt };
}

async function main() {
	const opt = parseArgs(process.argv.slice(2));
	const llama = await getLlama({
		gpu: false, build: "never", usePrebuiltBinaries: true, progressLogs: false,
		logLevel: LlamaLogLevel.error, logger: () => {},
	});
	const start = performance.now();
	let model;
	try {
		model = await llama.loadModel({ modelPath: opt.model, useMmap: opt.mmap, gpuLayers: 0 });
	} catch (err) {
		process.stderr.write(`generate.mjs: cannot load ${opt.model}: ${err.message}\n`);
		process.exit(1);
	}
	const loaded = performance.now();
	let res;
	try {
		res = await generate(model, opt);
	} catch (err) {
		process.stderr.write(`generate.mjs: cannot evaluate ${opt.model}: ${err.message}\n`);
		process.exit(1);
	}
	process.stdout.write(`TOKENS ${res.out.join(" ")}\n`);
	process.stdout.write(`TEXT ${JSON.stringify(res.text)}\n`);
	if (opt.time)
		process.stdout.write(`TIME load_ms=${Math.round(loaded - start)} ` +
			`first_token_ms=${Math.round(res.firstTokenAt - start)}\n`);
	await model.dispose();
	await llama.dispose();
}

main().catch((err) => {
	process.stderr.write(`generate.mjs: ${err.message}\n`);
	process.exit(1);
});
