"""Rendering the report's HTML, Markdown and plots from a hand-made figures dict."""

from __future__ import annotations

from replay.report.html import render_html
from replay.report.markdown import render_markdown
from replay.report.plots import PLOTS, render_all
from replay.report.tables import cell
from tests.report_fixture import fixture_report


def test_every_plot_is_inline_svg_without_references():
    rep = fixture_report()
    plots = render_all(rep)
    assert set(plots) == set(PLOTS)
    for svg in plots.values():
        assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
        assert "<?xml" not in svg and "DOCTYPE" not in svg and "<metadata" not in svg
        assert "xlink:href=\"http" not in svg and "<image" not in svg


def test_plots_are_skipped_without_figures():
    rep = fixture_report()
    rep["fragmentation"] = {"series": [], "largest_free_run": [], "summary": []}
    rep["cost_distribution"]["searches"] = []
    plots = render_all(rep)
    assert "fragindex_over_time" not in plots and "cost_distribution" not in plots


def test_html_escapes_trace_text():
    rep = fixture_report()
    rep["demand"]["processes"][0]["comm"] = "<script>x</script>"
    page = render_html(rep, {})
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_markdown_escapes_pipes_and_states_the_verdict():
    rep = fixture_report()
    md = render_markdown(rep)
    assert "GFP_TRANSHUGE" in md
    rep["demand"]["gfp"][0]["gfp_flags"] = "GFP_KERNEL|__GFP_COMP"
    assert "GFP_KERNEL\\|__GFP_COMP" in render_markdown(rep)
    assert "**Recommended max order N = 9 (MAX_ORDER 10 in 2001-era terms)" in md


def test_each_requester_class_links_its_kernel_source_line():
    rep = fixture_report()
    url = ("https://git.kernel.org/pub/scm/linux/kernel/git/stable/linux.git/tree/"
           "mm/hugetlb.c?h=v6.12.118#n2104")
    assert f"[mm/hugetlb.c:2104 alloc_fresh_hugetlb_folio()]({url})" in render_markdown(rep)
    page = render_html(rep, {})
    assert f'<a href="{url}">mm/hugetlb.c:2104 alloc_fresh_hugetlb_folio()</a>' in page
    assert "include/linux/hugetlb.h:797 hstate_is_gigantic()</a>" in page  # a constraint


def test_missing_shares_print_na():
    assert cell(None, "pct") == "n/a" and cell(None, "int") == "–"


def test_cells():
    assert cell(None, "int") == "–"
    assert cell(12345, "int") == "12,345"
    assert cell(0.995, "pct") == "99.50%" and cell(1.0, "pct") == "100%"
    assert cell(0.00123, "float") == "0.00123" and cell(18837.7, "float") == "18,838"
