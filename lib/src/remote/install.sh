# shellcheck shell=sh
# How the scripts that change a venv (push.sh, generation.sh) install and
# uninstall: with uv where vd-push made one ready on the host (see
# crate::push's installer), else with the venv's pip. vd puts this text
# after the prelude, before the script's own.

# pip_with PYTHON ARGS...: PYTHON's pip, with the options every push takes:
# no user or site configuration, no prompts, no cache in the venv user's
# home; its output goes to stderr. `python -m pip` rather than bin/pip,
# whose #! line breaks when a venv is moved.
pip_with() {
    py=$1
    shift
    "$py" -m pip --isolated --disable-pip-version-check --no-input --no-cache-dir "$@" \
        </dev/null 1>&2
}

# install_wheels UV PYTHON FILE...: install the wheel files into PYTHON's
# venv, from the files only, dependencies not resolved (vd-diff did): with
# the uv binary UV, or with PYTHON's pip where UV is empty. uv takes no user
# or project configuration (--no-config, as pip's --isolated), works
# offline, copies files rather than linking them from its cache, and
# compiles bytecode (uv_bytecode: --compile-bytecode, which compiles every
# file of the venv that lacks it; a script whose freeze.py compiles what was
# installed, as pip does, sets --no-compile-bytecode). Output goes to
# stderr.
uv_bytecode=--compile-bytecode
install_wheels() {
    uv=$1 py=$2
    shift 2
    if [ -n "$uv" ]; then
        "$uv" pip install --no-config --offline --no-index --no-deps \
            "$uv_bytecode" --link-mode copy --python "$py" "$@" </dev/null 1>&2
    else
        pip_with "$py" install --no-index --no-deps "$@"
    fi
}

# uninstall_packages UV PYTHON NAME...: uninstall the named packages from
# PYTHON's venv, with uv or pip as install_wheels.
uninstall_packages() {
    uv=$1 py=$2
    shift 2
    if [ -n "$uv" ]; then
        "$uv" pip uninstall --no-config --offline --python "$py" "$@" </dev/null 1>&2
    else
        pip_with "$py" uninstall -y "$@"
    fi
}
