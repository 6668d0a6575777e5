"""``python -m entropic_ae.data [NAME ...] [--root DIR]``: provision datasets."""

from entropic_ae.data.provision import main

raise SystemExit(main())
