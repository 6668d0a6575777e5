"""Each chapter's analysis, one module per chapter: the claims it decides (with identifiers),
its goal checks, its tables and the sentences it writes from numbers. Presentation only: the
experiment layer's cache does not depend on these modules."""
