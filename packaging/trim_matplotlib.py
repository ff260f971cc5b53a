"""What the bundle keeps of matplotlib and Pillow: the Agg canvas writing PNGs, nothing else (issue 12).

Read by packaging/metainspect.spec and by bench/bench_bundle_matplotlib.sh (which measures what it adds). Only
``metainspect-lab report`` draws plots (core/lab/plots.py: Figure + FigureCanvasAgg, no pyplot); the GUI never
imports matplotlib, so its Analysis excludes it.
"""

# Modules the hooks would pull in that the Agg/PNG path never imports.
EXCLUDES = [
    "matplotlib.pyplot",
    "matplotlib.tests",
    "matplotlib.testing",
    "mpl_toolkits",
    "matplotlib.backends.backend_qt",
    "matplotlib.backends.backend_qt5",
    "matplotlib.backends.backend_qtagg",
    "matplotlib.backends.backend_qt5agg",
    "matplotlib.backends.backend_qtcairo",
    "matplotlib.backends.backend_qt5cairo",
    "matplotlib.backends.qt_compat",
    "matplotlib.backends.qt_editor",
    "matplotlib.backends.backend_tkagg",
    "matplotlib.backends.backend_tkcairo",
    "matplotlib.backends._backend_tk",
    "matplotlib.backends._tkagg",
    "matplotlib.backends.backend_gtk3",
    "matplotlib.backends.backend_gtk3agg",
    "matplotlib.backends.backend_gtk3cairo",
    "matplotlib.backends.backend_gtk4",
    "matplotlib.backends.backend_gtk4agg",
    "matplotlib.backends.backend_gtk4cairo",
    "matplotlib.backends._backend_gtk",
    "matplotlib.backends.backend_wx",
    "matplotlib.backends.backend_wxagg",
    "matplotlib.backends.backend_wxcairo",
    "matplotlib.backends.backend_webagg",
    "matplotlib.backends.backend_webagg_core",
    "matplotlib.backends.backend_nbagg",
    "matplotlib.backends.backend_macosx",
    "matplotlib.backends.backend_cairo",
    "matplotlib.backends.backend_pgf",
    "matplotlib.backends.backend_pdf",
    "matplotlib.backends.backend_ps",
    "matplotlib.backends.backend_svg",
    "matplotlib.backends.backend_template",
    "PIL.ImageQt",
    "PIL.ImageTk",
    "PIL.ImageCms",
    "PIL.ImageFont",
    "PIL.AvifImagePlugin",
    "PIL.WebPImagePlugin",
    "PIL.SpiderImagePlugin",
    "PIL._avif",
    "PIL._webp",
    "PIL._imagingtk",
    "PIL._imagingcms",
    "PIL._imagingft",
    "PIL._imagingmath",
    "PIL._imagingmorph",
    "IPython",
    "tkinter",
]

# Data and libraries collected but never read on that path (patterns on the path inside the bundle).
DROP = [
    "matplotlib/mpl-data/sample_data/*",
    "matplotlib/mpl-data/images/*",  # toolbar icons of the interactive backends
    "matplotlib/mpl-data/plot_directive/*",
    "matplotlib/mpl-data/kpsewhich.lua",
    "matplotlib/mpl-data/fonts/afm/*",  # PostScript/PDF output only
    "matplotlib/mpl-data/fonts/pdfcorefonts/*",
    "matplotlib/mpl-data/fonts/ttf/STIX*",  # math text; the report has none
    "matplotlib/mpl-data/fonts/ttf/cm*",
    "matplotlib/mpl-data/fonts/ttf/DejaVuSerif*",
    "matplotlib/mpl-data/fonts/ttf/DejaVuSansMono*",
    "matplotlib/mpl-data/fonts/ttf/DejaVuSansDisplay.ttf",
    "matplotlib/mpl-data/fonts/ttf/DejaVuSans-*.ttf",  # bold/oblique: the plots use the regular face only
    "matplotlib/backends/web_backend/*",
    "pillow.libs/libavif*",
    "pillow.libs/libwebp*",
    "pillow.libs/libsharpyuv*",
    "pillow.libs/liblcms2*",
    "pillow.libs/libfreetype*",  # matplotlib's ft2font carries its own FreeType
    "pillow.libs/libharfbuzz*",
    "pillow.libs/libbrotli*",
]

# Extension modules that are not patchelf-repaired wheel libraries, safe to strip (kiwisolver ships debug info).
STRIP = ["kiwisolver/_cext*.so", "matplotlib/*.so", "matplotlib/backends/_backend_agg*.so", "contourpy/*.so"]

# PyInstaller's matplotlib hook: collect the Agg backend only.
HOOKSCONFIG = {"matplotlib": {"backends": ["Agg"]}}
