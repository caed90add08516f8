# vd: build, test, install, man pages, demo, benchmarks, lint.

PREFIX ?= /usr/local
DESTDIR ?=
BINDIR = $(DESTDIR)$(PREFIX)/bin
MANDIR = $(DESTDIR)$(PREFIX)/share/man
SHAREDIR = $(DESTDIR)$(PREFIX)/share
CARGO ?= cargo
TOOLS = vd-add vd-targets vd-freeze vd-diff vd-export vd-fetch vd-push vd-migrate vd-reload vd-rollback vd-rollout

.PHONY: all build test man completions install demo bench lint clean

all: build

build:
	$(CARGO) build --release --locked

# The whole suite: unit tests, and integration tests that run the real
# binaries against real wheels (and, for the remote tools, a real sshd).
# scripts/test-setup first installs what the suite needs and is missing (as
# root; otherwise it stops naming the packages).
test:
	scripts/test-setup
	$(CARGO) test --locked --workspace

# Regenerate the tools' pages from their clap definitions (vd.7 is written by hand).
man:
	$(CARGO) run --quiet --locked -p vd --example man -- man

# Regenerate the shell completions (bash, zsh, fish) from the same definitions.
completions:
	$(CARGO) run --quiet --locked -p vd --example completions -- completions

install: build
	install -d $(BINDIR) $(MANDIR)/man1 $(MANDIR)/man7
	for t in $(TOOLS); do install -m 755 target/release/$$t $(BINDIR)/$$t; done
	install -m 644 man/*.1 $(MANDIR)/man1/
	install -m 644 man/vd.7 $(MANDIR)/man7/
	install -d $(SHAREDIR)/bash-completion/completions $(SHAREDIR)/zsh/site-functions \
		$(SHAREDIR)/fish/vendor_completions.d
	install -m 644 completions/bash/* $(SHAREDIR)/bash-completion/completions/
	install -m 644 completions/zsh/* $(SHAREDIR)/zsh/site-functions/
	install -m 644 completions/fish/* $(SHAREDIR)/fish/vendor_completions.d/

# The shell programs vd sends to hosts are checked by shellcheck where it is
# installed (make test installs it; a unit test runs it too), and so are the
# set-up scripts.
SHELL_SCRIPTS = lib/src/remote/prelude.sh lib/src/remote/generations.sh lib/src/remote/install.sh \
	lib/src/remote/push.sh lib/src/remote/push_step.sh \
	lib/src/remote/generation.sh lib/src/remote/switch.sh lib/src/remote/journal.sh \
	lib/src/remote/cache.sh lib/src/remote/freeze.sh lib/src/remote/freeze_batch.sh \
	lib/src/remote/running.sh
SETUP_SCRIPTS = scripts/require.sh scripts/test-setup

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --locked --workspace --no-deps --document-private-items
	@if command -v shellcheck >/dev/null 2>&1; then \
		echo "shellcheck $(SHELL_SCRIPTS) $(SETUP_SCRIPTS)"; \
		shellcheck --norc $(SHELL_SCRIPTS); shellcheck --norc -x $(SETUP_SCRIPTS); \
	else \
		echo "lint: shellcheck is not installed; $(SHELL_SCRIPTS) not checked (apt-get install shellcheck)" >&2; \
	fi

# A whole deployment against a throwaway sshd on loopback (see examples/demo.sh);
# the demo and the benchmarks share that fleet (bench/fleet.sh) and run the
# binaries in VD_BIN (default target/release).
demo: build
	examples/demo.sh

bench: build
	bench/run

clean:
	$(CARGO) clean
