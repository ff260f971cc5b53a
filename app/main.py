"""Entry point of the MetaInspect desktop app."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from PySide6.QtWidgets import QApplication, QLabel, QMainWindow


def main(argv: Sequence[str] | None = None) -> int:
    app = QApplication.instance() or QApplication(list(argv) if argv is not None else sys.argv)
    window = QMainWindow()
    window.setWindowTitle("MetaInspect")
    window.setCentralWidget(QLabel("MetaInspect"))
    window.show()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
