"""The generated package threadline.v1 must match protos/ exactly."""

from pathlib import Path

from threadline import codegen


def test_generated_code_matches_protos(tmp_path: Path) -> None:
    fresh = codegen.generate(tmp_path)
    committed = codegen.ROOT / "threadline" / "v1"
    assert [p.name for p in fresh] == sorted(p.name for p in committed.iterdir()
                                              if p.is_file() and p.suffix in (".py", ".pyi")), \
        "generated file set differs: run `make proto`"
    stale = [p.name for p in fresh if p.read_bytes() != (committed / p.name).read_bytes()]
    assert not stale, f"threadline/v1 is stale against protos/ ({stale}): run `make proto`"


def test_every_enum_has_an_unspecified_zero() -> None:
    from threadline.v1 import common_pb2

    for enum in common_pb2.DESCRIPTOR.enum_types_by_name.values():
        zero = enum.values_by_number[0].name
        assert zero.endswith("_UNSPECIFIED"), f"{enum.name} starts with {zero}"
