"""The persistent compilation cache is switched on by the settings `enable` writes (JAX's option
names are checked by a compilation landing in the directory) and off with BAYESMM_JAX_CACHE=0; the
in-memory caches are cleared after a fit only when the process nears the kernel's mapping limit."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from bayesmm import compilation_cache


def test_enable_writes_compilations_to_the_directory(tmp_path, monkeypatch):
    monkeypatch.delenv(compilation_cache.ENV_SWITCH, raising=False)  # the suite may run with it off
    before = jax.config.jax_compilation_cache_dir
    try:
        assert compilation_cache.enable(tmp_path / "c") == tmp_path / "c"
        jax.jit(lambda x: jnp.sin(x) * 3.25 + 0.125)(jnp.arange(7.0)).block_until_ready()
        written = len(list((tmp_path / "c").iterdir()))
        assert written > 0, "nothing was written to the cache directory"
        monkeypatch.setenv(compilation_cache.ENV_SWITCH, "0")
        assert compilation_cache.enable(tmp_path / "off") is None
        assert not (tmp_path / "off").exists()
        # off even though the cache was on (and JAX would take its directory from the environment)
        assert jax.config.jax_compilation_cache_dir is None
        jax.jit(lambda x: jnp.cos(x) * 1.75 - 0.5)(jnp.arange(5.0)).block_until_ready()
        assert len(list((tmp_path / "c").iterdir())) == written
    finally:
        monkeypatch.delenv(compilation_cache.ENV_SWITCH, raising=False)  # restore the cache, not turn it off
        if before is not None:
            compilation_cache.enable(before)


def test_fits_release_compiled_code_only_near_the_mapping_limit():
    from bayesmm.models.fit import release_compiled_code

    f = jax.jit(lambda x: x * 2.0 + 1.0)
    f(jnp.ones(3)).block_until_ready()
    assert not release_compiled_code(share=1e9) and f._cache_size() == 1  # far below: kept
    assert release_compiled_code(share=0.0) and f._cache_size() == 0  # any mapping exceeds 0: cleared
