"""Publish a slot dataset folder as a Hugging Face Hub dataset repository.

    python downstream/hub_publishing.py FOLDER REPO_ID [--public]

The folder is uploaded as it is (`data/*.parquet`, `README.md`, `extraction.json`), since it is
laid out exactly as a Hub dataset repo holds it. The token comes from where `huggingface_hub`
looks for it (`HF_TOKEN`, or `hf auth login`); it is never printed or logged. A failure (no
network, offline mode, no or wrong token) raises `HubPublishingError`, whose message says that
the local folder is intact and how to retry; nothing local is changed by a failed upload.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError, HTTPError, OfflineModeIsEnabled

from tasks.slots import check_complete_shards

# temporary files of an unfinished shard or record; never published
IGNORED = ["*.tmp", "**/*.tmp", ".*", "**/.*"]


class HubPublishingError(RuntimeError):
    """The upload failed; the message says why and how to retry."""


def push_slot_folder(folder: str | Path, repo_id: str, private: bool = True) -> str:
    """Creates the dataset repo `repo_id` (private unless `private=False`; an existing repo is
    reused) and uploads `folder` to it in one commit. Returns the repo's URL."""
    folder = Path(folder)
    if not (folder / "README.md").is_file():
        raise FileNotFoundError(f"{folder} has no README.md (dataset card): finish the "
                                "extraction before publishing it")
    check_complete_shards(folder)
    retry = (f"The local output at {folder} is intact; to retry, run `python "
             f"downstream/hub_publishing.py {folder} {repo_id}` (or rerun the extraction with "
             "the same arguments).")
    api = HfApi()
    try:
        url = api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="dataset",
                          ignore_patterns=IGNORED,
                          commit_message="Upload slot dataset (downstream/extract.py)")
    except OfflineModeIsEnabled as error:
        raise HubPublishingError(
            f"cannot publish to the Hub dataset repo {repo_id}: offline mode is on "
            f"(HF_HUB_OFFLINE). {retry}"
        ) from error
    except HfHubHTTPError as error:
        status = error.response.status_code if error.response is not None else None
        reason = {
            401: "the Hub refused the credentials: log in with `hf auth login` or set HF_TOKEN",
            403: f"the token may not write to {repo_id}: use a token with write access",
        }.get(status, f"the Hub answered {status}: {_first_line(error)}")
        raise HubPublishingError(f"cannot publish to {repo_id}: {reason}. {retry}") from error
    except (HTTPError, OSError) as error:
        raise HubPublishingError(
            f"cannot reach the Hugging Face Hub to publish {repo_id} ({type(error).__name__}: "
            f"{_first_line(error)}). {retry}"
        ) from error
    return str(url)


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [""])[0]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Publish a slot dataset folder to the Hub")
    parser.add_argument("folder", help="the output folder of downstream/extract.py")
    parser.add_argument("repo_id", help="the dataset repo, e.g. user/clevrer-slots")
    parser.add_argument("--public", action="store_true", help="a public repo (default private)")
    args = parser.parse_args(argv)
    try:
        url = push_slot_folder(args.folder, args.repo_id, private=not args.public)
    except (HubPublishingError, FileNotFoundError, ValueError) as error:
        sys.exit(f"error: {error}")
    print(f"published {args.folder} to {url}")


if __name__ == "__main__":
    main()
