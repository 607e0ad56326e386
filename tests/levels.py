"""Category levels for online executors built without training: every level the title and
employee-band helpers can produce, and two industries."""

from __future__ import annotations

LEVELS = {
    "industry": ["software", "retail"],
    "title_seniority": ["c_level", "vp", "director", "manager", "senior", "junior", "individual"],
    "title_function": [
        "marketing",
        "sales",
        "engineering",
        "it",
        "finance",
        "operations",
        "hr",
        "other",
    ],
    "employees_band": ["1-10", "11-50", "51-200", "201-1000", "1001-5000", "5000+"],
}
