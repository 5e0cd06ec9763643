"""What `dev up` tells its user once the cluster is ready: one JSON line, or a readable summary."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.markup import escape


def print_json_line(document: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(document, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def _rows(document: dict[str, Any]) -> list[tuple[str, str, str]]:
    rows = [("admin", document["admin_url"], "tokens, JWKS, accounts, storage element registry")]
    for element in document["storage_elements"]:
        rows.append((f"storage element {element['id']}", element["url"], f"mode {element['mode']}"))
    rows.append(("ingester", document["ingester_url"], "uploads (POST /api/v1/files), updates, deletes"))
    rows.append(("query", document["query_url"], "search (POST /api/v1/search), attributes, downloads"))
    for name, label in (("database", "PostgreSQL"), ("redis", "Redis")):
        server = document[name]
        note = "embedded" if server["embedded"] else "from the environment"
        if "namespace" in server:
            note += f", key namespace '{server['namespace']}'"
        rows.append((label, server["url"], note))
    return rows


def print_summary(document: dict[str, Any], console: Console) -> None:
    def print_line(text: str) -> None:
        console.print(text, soft_wrap=True)  # soft wrap: a URL or a secret must never be cut

    print_line(f"[bold green]ArtStore dev cluster is up[/]  (data in {escape(document['data_dir'])})")
    rows = _rows(document)
    width = max(len(name) for name, _, _ in rows)
    url_width = max(len(url) for _, url, _ in rows)
    for name, url, note in rows:
        print_line(f"  {name:<{width}}  [cyan]{escape(url):<{url_width}}[/]  [dim]{escape(note)}[/]")
    print_line("\n[bold]Bootstrap ADMIN account[/] (in dev its tokens also carry 'internal')")
    print_line(f"  client_id      {escape(document['client_id'])}")
    print_line(f"  client_secret  {escape(document['client_secret'])}")
    print_line(
        "\nThe artstore command finds this cluster from another directory or terminal with:\n"
        f"  [cyan]export ARTSTORE_DATA_DIR={escape(document['data_dir'])}[/]"
    )
    print_line(f"Get a token:  [cyan]artstore token --data-dir {escape(document['data_dir'])}[/]")
    print_line(f"Logs:         {escape(document['logs_dir'])}")
    print_line("[dim]Press Ctrl-C to stop.[/]")
