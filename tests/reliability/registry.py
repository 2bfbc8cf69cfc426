"""The reliability suite's cases, by kind. Tests parametrise over these lists and record each outcome through the
`probe` fixture (conftest.py); `benchmarks/reliability.py` counts the recorded outcomes.

Kinds: "input" (a hostile file or id handed to the tool), "fault" (a network failure or a killed process),
"resume" (a killed run started again).
"""

from __future__ import annotations

# PDFs handed to the reader (and, for some, to a whole `claimscope run`)
HOSTILE_PDFS = [
    "corrupt",         # %PDF header, random bytes
    "truncated",       # a real paper cut to a third
    "encrypted",       # AES-256 with a user password
    "zero_page",       # a valid PDF with /Count 0
    "blank_page",      # one page, no text, no images
    "image_only",      # a scanned page: images, no text layer
    "pages_500",       # 500 text pages with retrieve.max_pages set to 50
    "oversized",       # larger than retrieve.max_bytes (set low)
    "not_a_pdf",       # HTML saved as .pdf
    "empty_file",      # 0 bytes
    "html_script",     # a readable PDF whose text is HTML/script
]

# claims files handed to `read_claims` (and the CLI)
HOSTILE_CLAIMS = [
    "latin1_csv",          # Latin-1 bytes, not UTF-8
    "utf16_json",          # UTF-16 with BOM
    "binary_garbage",      # random bytes named .json
    "csv_missing_claim_column",
    "csv_empty_rows",      # blank and all-comma rows between good ones
    "csv_only_header",
    "csv_10mb_line",       # one 10 MB cell
    "json_10mb_line",      # one claim of 10 MB on one line
    "json_duplicate_ids",
    "json_bad_syntax",
    "json_wrong_shape",    # a number / an object without 'claims'
    "json_claim_not_object",
    "json_bad_cited",      # cited ids with '..' and path separators
    "jsonl_not_object",    # SciFact lines that are lists / numbers
    "jsonl_missing_id",
    "too_many_claims",     # more than verify.max_claims
    "nul_bytes_txt",
]

# report files in formats we do not read
UNKNOWN_REPORTS = [
    "docx",        # a zip with a .docx name
    "xlsx",
    "pdf_report",  # a PDF given as the claims file
    "rtf",
    "txt_without_table",
    "md_empty",
    "directory",   # a folder given as the claims file
]

# arXiv ids that try to become paths
HOSTILE_IDS = [
    "../../etc/passwd",
    "2005.13013v1/../../../x",
    "..\\..\\x",
    "/etc/passwd",
    "hep-th/../9901001",
    "2005.13013v1/",
    "2005.13013v1\x00.pdf",
    "%2e%2e%2f%2e%2e%2fx",
    "https://arxiv.org/abs/../../x",
    "arXiv:../2005.13013",
]

# symlinks in the papers folder
SYMLINKS = [
    "file_outside",       # 2005.13013v1.pdf -> a file outside the folder
    "dir_outside",        # a folder symlink pointing outside
    "dangling",           # a link to nothing
    "inside",             # a link to another file inside the folder (allowed)
]

# network faults from the loopback arXiv server
NETWORK_FAULTS = [
    "api_429_retry_after",
    "api_429_no_retry_after",
    "api_500_then_ok",
    "api_503_forever",
    "api_html_instead_of_feed",
    "api_json_instead_of_feed",
    "api_reset_then_ok",
    "api_stall_timeout",
    "pdf_429_retry_after",
    "pdf_500_then_ok",
    "pdf_slow_body",
    "pdf_reset_then_ok",
    "pdf_reset_forever",
    "pdf_octet_stream",
    "pdf_html_forever",
    "pdf_truncated_then_ok",
    "pdf_oversized",
]

# points at which `claimscope run` is killed with SIGKILL, then resumed; the first ones run in the default tier
KILL_POINTS_FAST = ["verify_started", "random_a"]
KILL_POINTS_SLOW = ["claims_written", "retrieve_running", "index_saving", "verdicts_written", "report_writing",
                    "random_b", "random_c", "random_d"]
# points at which `claimscope reverify` (adding 2005.13013v2.md to a finished run) is killed, then run again
REVERIFY_KILL_POINTS_FAST = ["reverify_random_a"]
REVERIFY_KILL_POINTS_SLOW = ["reverify_staging_started", "reverify_commit_marker", "reverify_random_b"]

ALL = {
    "input": HOSTILE_PDFS + HOSTILE_CLAIMS + UNKNOWN_REPORTS + HOSTILE_IDS + SYMLINKS,
    "fault": NETWORK_FAULTS + KILL_POINTS_FAST + KILL_POINTS_SLOW + REVERIFY_KILL_POINTS_FAST
    + REVERIFY_KILL_POINTS_SLOW,
}
