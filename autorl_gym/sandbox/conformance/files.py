"""Checks of the file tools (write_file, read_file, list_files, resolve) and their path policy."""

from __future__ import annotations

from pathlib import Path

from autorl_gym.sandbox.conformance.base import SECRET, Layout, conformance_check, ensure, refused


@conformance_check()
def file_tools(c: Layout) -> None:
    """write_file, read_file (offset/limit) and list_files agree with the host"""
    n = c.sandbox.write_file("a/b/notes.txt", "héllo\nworld\n")
    ensure(n == len("héllo\nworld\n".encode()), f"write_file returned {n}, not the byte count")
    ensure((c.ws / "a/b/notes.txt").read_text() == "héllo\nworld\n", "file not on the host")
    ensure(c.sandbox.read_file("a/b/notes.txt") == "héllo\nworld\n", "relative read differs")
    absolute = str(c.ws / "a/b/notes.txt")
    ensure(c.sandbox.read_file(absolute) == "héllo\nworld\n", "absolute read differs")
    ensure(c.sandbox.read_file("a/b/notes.txt", offset=1, limit=4) == "éllo", "offset/limit")
    ensure(c.sandbox.read_file("./a/../a/b/notes.txt") == "héllo\nworld\n", "./.. inside ws")
    c.sandbox.write_file(absolute, "replaced")
    ensure(c.sandbox.read_file("a/b/notes.txt") == "replaced", "overwrite by absolute path")
    listing = c.sandbox.list_files(".")
    for part in ("a/", "b/", "notes.txt (8 B)"):
        ensure(part in listing, f"listing lacks {part!r}:\n{listing}")
    ensure("notes.txt" in c.sandbox.list_files("a/b"), "listing of a subfolder")
    ensure(c.sandbox.resolve("a/b/notes.txt") == (c.ws / "a/b/notes.txt").resolve(), "resolve")


@conformance_check()
def exec_sees_tool_files(c: Layout) -> None:
    """commands run in the workspace and see the file tools' files, and the other way round"""
    c.sandbox.write_file("from_tool.txt", "tool wrote this")
    r = c.exec("pwd; cat from_tool.txt; echo; echo 'cmd wrote this' > from_cmd.txt")
    ensure(r.exit_code == 0, f"exit {r.exit_code}: {r.output}")
    lines = r.output.splitlines()
    ensure(lines and Path(lines[0]).resolve() == c.ws.resolve(),
           f"cwd is {lines[:1]}, not the workspace")
    ensure("tool wrote this" in r.output, f"command cannot read the tool's file: {r.output}")
    ensure(c.sandbox.read_file("from_cmd.txt") == "cmd wrote this\n", "tool cannot read cmd file")


@conformance_check()
def mounts_read_only_for_tools(c: Layout) -> None:
    """the file tools read the model/ and data/ mounts and refuse to write them"""
    ensure(c.sandbox.read_file(str(c.data / "data.txt")) == "mounted data\n", "read mount")
    ensure(c.sandbox.read_file("data/data.txt") == "mounted data\n", "read through ws/data")
    ensure("config.json" in c.sandbox.list_files("model"), "list ws/model")
    ensure("data.txt" in c.sandbox.list_files(str(c.data)), "list mount")
    r = c.exec(f"cat {c.data}/data.txt")
    ensure(r.output == "mounted data\n", f"command cannot read the mount: {r.output!r}")
    refused(lambda: c.sandbox.write_file(str(c.data / "new.txt"), "x"), "write into ro mount", "read")
    refused(lambda: c.sandbox.write_file(str(c.data / "data.txt"), "x"), "overwrite ro mount")
    refused(lambda: c.sandbox.write_file("data/new.txt", "x"), "write through ws/data")
    refused(lambda: c.sandbox.write_file("model/config.json", "x"), "overwrite ws/model/…")
    ensure((c.data / "data.txt").read_text() == "mounted data\n", "mount file changed")
    ensure(not (c.data / "new.txt").exists(), "file created in the read-only mount")
    ensure((c.model / "config.json").read_text() == '{"model_type": "qwen2"}\n', "model changed")


@conformance_check()
def path_escapes_refused(c: Layout) -> None:
    """paths and symlinks leaving the workspace and the mounts are refused by the file tools"""
    hid = c.hidden.name
    for bad in (f"../{hid}/secret.txt", f"a/../../{hid}/secret.txt", str(c.hidden / "secret.txt"),
                str(c.hidden_files[1]), "/etc/passwd", "/"):
        refused(lambda bad=bad: c.sandbox.read_file(bad), f"read_file({bad!r})", "escapes")
        refused(lambda bad=bad: c.sandbox.list_files(bad), f"list_files({bad!r})", "escapes")
        refused(lambda bad=bad: c.sandbox.resolve(bad), f"resolve({bad!r})", "escapes")
    refused(lambda: c.sandbox.write_file("../escaped.txt", "x"), "write ../", "escapes")
    refused(lambda: c.sandbox.write_file("/tmp/escaped.txt", "x"), "write /tmp", "escapes")
    ensure(not (c.root / "escaped.txt").exists(), "a file was written outside the workspace")
    # a symlink pointing out of the workspace, to a file and to a folder
    (c.ws / "out_link").symlink_to(c.hidden / "secret.txt")
    (c.ws / "out_dir").symlink_to(c.hidden)
    refused(lambda: c.sandbox.read_file("out_link"), "read through a symlink out", "escapes")
    refused(lambda: c.sandbox.read_file("out_dir/secret.txt"), "read via dir symlink")
    refused(lambda: c.sandbox.write_file("out_link", "x"), "write through a symlink out")
    refused(lambda: c.sandbox.write_file("out_dir/new.txt", "x"), "write via dir symlink")
    refused(lambda: c.sandbox.list_files("out_dir"), "list via dir symlink")
    ensure((c.hidden / "secret.txt").read_text() == SECRET + "\n", "hidden file changed")
    ensure(not (c.hidden / "new.txt").exists(), "file created through a symlink")
    # the listing shows symlinks as links, without following them
    listing = c.sandbox.list_files(".")
    ensure(f"out_dir -> {c.hidden}" in listing, f"symlink not shown as a link:\n{listing}")
    ensure("secret.txt (" not in listing, f"listing followed a symlink out:\n{listing}")
    # symlinks that stay inside are fine
    c.sandbox.write_file("real.txt", "inside")
    (c.ws / "in_link").symlink_to("real.txt")
    (c.ws / "data_link").symlink_to(c.data / "data.txt")
    ensure(c.sandbox.read_file("in_link") == "inside", "symlink inside the workspace")
    ensure(c.sandbox.read_file("data_link") == "mounted data\n", "symlink into a mount")
    refused(lambda: c.sandbox.write_file("data_link", "x"), "write via link into ro mount")


@conformance_check()
def missing_and_bad_paths(c: Layout) -> None:
    """missing files, folders and binary files give clear refusals"""
    refused(lambda: c.sandbox.read_file("nope.txt"), "read of a missing file", "no such")
    refused(lambda: c.sandbox.list_files("nope"), "list of a missing folder", "no such")
    (c.ws / "dir").mkdir()
    refused(lambda: c.sandbox.read_file("dir"), "read of a folder", "directory")
    refused(lambda: c.sandbox.write_file("dir", "x"), "write onto a folder", "directory")
    (c.ws / "blob.bin").write_bytes(bytes(range(256)) * 4)
    refused(lambda: c.sandbox.read_file("blob.bin"), "read of a binary file", "binary")
    ensure("blob.bin (1.0 KB)" in c.sandbox.list_files("."), "binary file size in listing")


@conformance_check(max_file_bytes=1000)
def file_size_limits(c: Layout) -> None:
    """write_file and read_file keep to max_file_bytes; a window of a large file reads"""
    refused(lambda: c.sandbox.write_file("big.txt", "x" * 1001), "oversized write", "1001 bytes")
    ensure(not (c.ws / "big.txt").exists(), "oversized write left a file")
    ensure(c.sandbox.write_file("ok.txt", "x" * 1000) == 1000, "write at the limit")
    (c.ws / "huge.txt").write_text("0123456789" * 500)
    refused(lambda: c.sandbox.read_file("huge.txt"), "read over max_file_bytes", "limit")
    part = c.sandbox.read_file("huge.txt", offset=4993, limit=7)
    ensure(part == "3456789", f"windowed read of a large file gave {part!r}")
