"""CPU feature checks that choose kernel paths: INT8 saturation on x86 without VNNI, native bf16."""

from __future__ import annotations

from runtime.cpu import cpu_flags, has_bf16, int8_saturates


def test_int8_saturates_only_on_x86_without_vnni():
    assert int8_saturates(frozenset({"avx2", "fma"}), x86=True)
    assert not int8_saturates(frozenset({"avx2", "avx512_vnni"}), x86=True)
    assert not int8_saturates(frozenset({"avx2", "avx_vnni"}), x86=True)
    assert not int8_saturates(frozenset(), x86=False)  # ARM: sdot/udot accumulate in 32 bits


def test_bf16_needs_native_instructions():
    assert has_bf16(frozenset({"avx512f", "avx512_bf16"})) and has_bf16(frozenset({"amx_bf16"}))
    assert not has_bf16(frozenset({"avx2", "avx512f"}))


def test_flags_are_read_from_this_machine():
    flags = cpu_flags()
    assert isinstance(flags, frozenset) and (not flags or "fpu" in flags)
