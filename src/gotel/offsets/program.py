"""The throwaway Go program a scan builds: it links the structs the probes declare.

Unexported types cannot be named from another package, and the linker drops the code (and
with it the DWARF) of whatever nothing reaches. So the program keeps the whole exported API of
the packages declaring the structs: every exported function and method, as values in a global
slice. A struct in a package that cannot be imported (internal/, std's vendor/) is kept through
the nearest importable packages that import it. The scan then checks the struct DIEs are really
there, and tells "not in this version" (not declared in the source) from "dropped by the
linker" (a scan failure) using the declarations the lister below reads from the source.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from gotel.offsets.fields import STD, Declares

# Lists the declarations of the Go files named on its command line (one package):
#   type NAME          every top-level type
#   func NAME          exported, non-generic functions
#   method TYPE NAME   exported methods of exported, non-generic types
LISTER_SOURCE = """\
// Command lister prints the declarations gotel's offsets tracker needs from Go source files.
package main

import (
	"bufio"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
)

func main() {
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	fset := token.NewFileSet()
	for _, path := range os.Args[1:] {
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		for _, decl := range f.Decls {
			switch d := decl.(type) {
			case *ast.GenDecl:
				for _, spec := range d.Specs {
					if ts, ok := spec.(*ast.TypeSpec); ok {
						fmt.Fprintf(out, "type %s\\n", ts.Name.Name)
					}
				}
			case *ast.FuncDecl:
				if !d.Name.IsExported() || d.Type.TypeParams != nil {
					continue
				}
				if d.Recv == nil {
					fmt.Fprintf(out, "func %s\\n", d.Name.Name)
					continue
				}
				recv := d.Recv.List[0].Type
				if star, ok := recv.(*ast.StarExpr); ok {
					recv = star.X
				}
				// A generic receiver is an index expression: skipped.
				if id, ok := recv.(*ast.Ident); ok && id.IsExported() {
					fmt.Fprintf(out, "method %s %s\\n", id.Name, d.Name.Name)
				}
			}
		}
	}
}
"""

# Packages whose exported "functions" are compiler built-ins, not values.
_NOT_VALUES = {"unsafe", "builtin", "C"}


@dataclass(frozen=True)
class StructRef:
    name: str  # as DWARF names it: "net/http.Request"
    package: str  # "net/http"
    type: str  # "Request"


def struct_ref(name: str) -> StructRef:
    """Split a DWARF struct name; type names have no dots, package paths may ("yaml.v3")."""
    base = name.split("[", 1)[0]
    package, _, typ = base.rpartition(".")
    if not package or not typ:
        raise ValueError(f"struct name {name!r} is not package.Type")
    return StructRef(name, package.replace("%2e", "."), typ)


def declared_fields(probes: Iterable[Declares]) -> dict[str, dict[str, set[str]]]:
    """module -> struct -> field names, from every probe's declarations."""
    out: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for probe in probes:
        for f in probe.fields:
            out[f.module][f.struct].add(f.field)
    return {m: {s: set(fs) for s, fs in structs.items()} for m, structs in out.items()}


def std_floor(probes: Iterable[Declares]) -> str:
    """The oldest Go release any probe with std fields applies to ("1.21" -> "1.21.0")."""
    mins = [p.min_go for p in probes if any(f.module == STD for f in p.fields)]
    low = min(mins or ["1.21"], key=lambda v: tuple(int(x) for x in v.split(".")))
    return low if low.count(".") == 2 else low + ".0"


# --- packages -----------------------------------------------------------------------------------
@dataclass
class Package:
    """What `go list -json` says about one package, plus the lister's declarations."""

    path: str
    name: str = ""
    dir: str = ""
    go_files: list[str] = field(default_factory=list)
    imports: list[str] = field(default_factory=list)
    error: str = ""
    types: set[str] = field(default_factory=set)
    funcs: list[str] = field(default_factory=list)
    methods: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def from_go_list(cls, doc: Mapping[str, object]) -> Package:
        err = doc.get("Error")
        return cls(
            path=str(doc.get("ImportPath", "")),
            name=str(doc.get("Name", "")),
            dir=str(doc.get("Dir", "")),
            go_files=[str(f) for f in doc.get("GoFiles") or []],  # type: ignore[union-attr]
            imports=[str(i) for i in doc.get("Imports") or []],  # type: ignore[union-attr]
            error=str(err.get("Err", "")) if isinstance(err, dict) else "",
        )

    def add_declarations(self, lister_output: str) -> None:
        for line in lister_output.splitlines():
            kind, _, rest = line.partition(" ")
            if kind == "type":
                self.types.add(rest)
            elif kind == "func":
                self.funcs.append(rest)
            elif kind == "method":
                typ, _, name = rest.partition(" ")
                self.methods.append((typ, name))


# `go list` errors that mean "this package does not exist in this version".
_NO_SUCH_PACKAGE = ("is not in std", "does not contain package", "cannot find package",
                    "no required module provides package", "cannot find module providing "
                    "package", "matched no packages")


def package_missing(pkg: Package) -> bool:
    return bool(pkg.error) and any(s in pkg.error for s in _NO_SUCH_PACKAGE)


def importable(path: str) -> bool:
    """Can a program outside this module (and outside std) import the package?"""
    parts = path.split("/")
    return not (
        path in _NOT_VALUES
        or "internal" in parts
        or parts[0] == "vendor"
        or "vendor" in parts
        or parts[0] == "cmd"
    )


def keepers(wanted: Iterable[str], universe: Mapping[str, Package]) -> list[str]:
    """Packages to import so that the `wanted` packages are linked in.

    An importable package keeps itself; any other is kept through the nearest importable
    packages of the universe (std, or the module's packages) that import it.
    """
    importers: dict[str, set[str]] = defaultdict(set)
    for pkg in universe.values():
        for imp in pkg.imports:
            importers[imp].add(pkg.path)
    chosen: set[str] = set()
    for path in wanted:
        if importable(path):
            chosen.add(path)
            continue
        seen, layer = {path}, {path}
        while layer:
            layer = {i for p in layer for i in importers.get(p, ()) if i not in seen}
            seen |= layer
            found = {
                p for p in layer
                if p in universe and importable(p) and universe[p].name not in ("", "main")
            }
            if found:
                chosen |= found
                break
    return sorted(chosen)


# --- main.go ------------------------------------------------------------------------------------
def main_source(kept: Iterable[Package], structs: Iterable[StructRef]) -> str:
    """main.go referencing the API of each kept package and the exported declared structs."""
    packages = sorted(kept, key=lambda p: p.path)
    alias = {p.path: f"p{i}" for i, p in enumerate(packages)}
    entries: dict[str, list[str]] = {p.path: [] for p in packages}
    for pkg in packages:
        a = alias[pkg.path]
        entries[pkg.path] += [f"{a}.{name}" for name in sorted(set(pkg.funcs))]
        entries[pkg.path] += [f"(*{a}.{t}).{m}" for t, m in sorted(set(pkg.methods))]
    for ref in structs:
        if ref.package in alias and ref.type[:1].isupper() and "[" not in ref.name:
            entries[ref.package].append(f"(*{alias[ref.package]}.{ref.type})(nil)")

    lines = [
        "// Code generated by gotel offsets update. DO NOT EDIT.",
        "",
        "// This program is built, never run: it links the packages declaring the structs",
        "// gotel's probes read, with their exported API, so their types stay in its DWARF.",
        "package main",
        "",
        "import (",
    ]
    for pkg in packages:
        name = alias[pkg.path] if entries[pkg.path] else "_"
        lines.append(f"\t{name} {_go_string(pkg.path)}")
    lines += [")", "", "var keep = []any{"]
    for pkg in packages:
        lines += [f"\t{e}," for e in entries[pkg.path]]
    lines += ["}", "", "func main() { println(len(keep)) }", ""]
    return "\n".join(lines)


def _go_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
