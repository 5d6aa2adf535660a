// `diffscope report`'s page frame (html_page.hpp): the document, its inline style sheet and
// script, the table of contents, and the header that says what each dump measured.
#include "html_page.hpp"

#include <diffscope/analysis/figures.hpp>
#include <diffscope/version.hpp>

#include "page_parts.hpp"

namespace diffscope::cli::report {

namespace {

// Contrast: body text #1a1a1a and muted #4d4d4d on white, notes on #fff4ce, all above 7:1.
constexpr const char* style_sheet = R"css(
:root{color-scheme:light}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:#1a1a1a;background:#fff;margin:0 auto;max-width:1180px;padding:0 20px 40px}
h1{font-size:22px;margin:18px 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ccc;padding-bottom:4px}h3{font-size:15px;margin:18px 0 6px}
.sub{color:#4d4d4d;margin:0 0 10px}
nav.toc{font-size:13px;margin:8px 0 0}nav.toc a{margin-right:12px;color:#0a4f8a}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:3px 14px;margin:0}dl.facts dt{font-weight:600}dl.facts dd{margin:0;overflow-wrap:anywhere}
.fault{border:2px solid #a4161a;background:#fde8e8;padding:2px 6px;border-radius:3px}
.ok{font-weight:600}
p.missing{background:#fff4ce;border-left:4px solid #8a6d00;padding:6px 10px;margin:8px 0}
figure{margin:10px 0 16px;overflow-x:auto}figcaption{color:#4d4d4d;font-size:13px}
svg.chart{max-width:100%;height:auto;display:block}
table{border-collapse:collapse;font-size:13px;margin:6px 0 12px}th,td{border:1px solid #ccc;padding:3px 7px;text-align:left;vertical-align:top}td.n{text-align:right;font-variant-numeric:tabular-nums}
th{background:#f2f2f2}table.sortable th{cursor:pointer}
.status-missed{font-weight:700;color:#8b1a00}.status-engaged{color:#005a32}.status-unchecked{color:#4d4d4d}
.tree{font-size:13px}.tree details,.tree .leaf{margin-left:14px}.tree>details,.tree>.leaf{margin-left:0}
.tree summary,.tree .leaf{display:flex;align-items:center;gap:8px;padding:1px 0}
.tree summary{list-style:none;cursor:pointer}.tree summary::-webkit-details-marker{display:none}
.tree summary::before{content:"\25B8";flex:0 0 12px}.tree details[open]>summary::before{content:"\25BE"}
.tree .leaf::before{content:"";flex:0 0 12px}
.tree .nm{flex:0 0 calc(30em - var(--d,0)*14px);min-width:8em;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.tree .track{flex:0 0 360px;height:11px;background:#f0f0f0;position:relative}
.tree .bar{display:block;height:11px;background:#0072B2;border-right:1px solid #333}
.tree .v{font-variant-numeric:tabular-nums;font-size:12px}
pre.md{background:#f6f6f6;border:1px solid #ccc;padding:10px;overflow-x:auto;font-size:12px;white-space:pre;user-select:all}
footer{margin-top:30px;color:#4d4d4d;font-size:12px}
button{font:inherit;font-size:12px;margin:0 6px 6px 0}
)css";

// Sorting of tables marked sortable, expand/collapse of the scope tree, copying the
// Markdown. The page needs none of it.
constexpr const char* script = R"js(
(function(){
  function key(td){var v=td.getAttribute('data-v');return v!==null?parseFloat(v):td.textContent.trim().toLowerCase();}
  document.querySelectorAll('table.sortable').forEach(function(t){
    t.querySelectorAll('th').forEach(function(th,i){
      th.title='sort by this column';
      th.addEventListener('click',function(){
        var body=t.tBodies[0];var rows=Array.prototype.slice.call(body.rows);
        var asc=th.getAttribute('data-asc')!=='1';
        rows.sort(function(a,b){var x=key(a.cells[i]),y=key(b.cells[i]);return (x<y?-1:x>y?1:0)*(asc?1:-1);});
        rows.forEach(function(r){body.appendChild(r);});
        t.querySelectorAll('th').forEach(function(h){h.removeAttribute('data-asc');});
        th.setAttribute('data-asc',asc?'1':'0');
      });
    });
  });
  document.querySelectorAll('.tree-tools').forEach(function(bar){
    var tree=document.getElementById(bar.getAttribute('data-for'));
    [['expand all',true],['collapse all',false]].forEach(function(p){
      var b=document.createElement('button');b.type='button';b.textContent=p[0];
      b.addEventListener('click',function(){tree.querySelectorAll('details').forEach(function(d){d.open=p[1];});});
      bar.appendChild(b);
    });
  });
  document.querySelectorAll('pre.md').forEach(function(pre){
    if(!navigator.clipboard)return;
    var b=document.createElement('button');b.type='button';b.textContent='copy Markdown';
    b.addEventListener('click',function(){navigator.clipboard.writeText(pre.textContent).then(function(){b.textContent='copied';},function(){b.textContent='select the block and copy';});});
    pre.parentNode.insertBefore(b,pre);
  });
})();
)js";

std::string fact(const std::string& name, const std::string& value_html) {
  return "<dt>" + escape(name) + "</dt><dd>" + value_html + "</dd>";
}

std::string meta_value(const ordered_json& v) {
  std::string s = v.is_string() ? v.get<std::string>()
                                : v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return label_text(s, 300);
}

}  // namespace

void page_builder::section(const std::string& id, const std::string& title) {
  toc_.emplace_back(id, title);
  body_ += "<section id=\"" + id + "\"><h2>" + escape(title) + "</h2>\n";
}

void page_builder::chart(const std::string& id, const std::string& svg,
                         const std::string& caption) {
  body_ += "<figure>" + svg;
  if (!caption.empty()) body_ += "<figcaption>" + escape(caption) + "</figcaption>";
  body_ += "</figure>\n";
  charts_.emplace_back(id, svg);
}

void page_builder::missing(const std::string& key, const std::string& text) {
  body_ += "<p class=\"missing\" data-missing=\"" + escape(key) + "\"><strong>Missing:</strong> " +
           escape(text) + "</p>\n";
}

void page_builder::note(const std::string& text) {
  body_ += "<p>" + escape(text) + "</p>\n";
}

std::string slug(const std::string& s) {
  std::string o;
  for (const char c : s) {
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
      o += c;
    else if (c >= 'A' && c <= 'Z')
      o += static_cast<char>(c - 'A' + 'a');
    else if (!o.empty() && o.back() != '-')
      o += '-';
  }
  while (!o.empty() && o.back() == '-') o.pop_back();
  return o.empty() ? "x" : o.substr(0, 60);
}

std::string ms_text(double v) {
  return ms_label(v) + " ms";
}

void run_header(page_builder& b, const run_view& r) {
  const perf_dump_data& d = r.dump;
  std::string h = "<dl class=\"facts\">";
  h += fact("file", escape(d.file));
  for (const auto& [k, v] : d.meta.items()) h += fact(k, meta_value(v));
  if (!d.timestamp.empty()) h += fact("timestamp", escape(d.timestamp));
  h += fact("commit", escape(d.commit_hash));
  if (!d.request_id.empty() || !d.tag.empty())
    h += fact("request",
              escape(d.request_id) + (d.tag.empty() ? "" : " (tag " + escape(d.tag) + ")"));
  h += fact("end to end", ms_text(d.total_duration_ms) + " (total_duration_ms)");
  if (!d.has_diffscope) {
    h += fact("measured by",
              "SGLang's own timing (no diffscope object): host times taken without "
              "synchronising, no GPU numbers, no scopes or kernels");
  } else {
    if (r.mode == "sampled" && r.sampling.active)
      h += fact("mode", "sampled: " + escape(diffscope::detail::traced_steps_text(r.sampling)) +
                            "; stage and step times are device-event spans, figures from "
                            "operations estimates from the traced steps (marked ~ or estimate)");
    else if (r.mode == "sampled")
      h += fact("mode",
                "sampled: no operation traced (the GPU timing line says why); stage and step "
                "times only");
    else
      h += fact("mode", r.mode.empty() ? "not stated" : escape(r.mode));
    std::string timing =
        d.gpu_timing
            ? "<span class=\"ok\">measured</span>"
            : "<span class=\"fault\">not measured</span>" +
                  (d.gpu_reason.empty() ? std::string() : " (" + escape(d.gpu_reason) + ")") +
                  ": host timings only";
    if (r.perf_sample_steps > 1)
      timing += "; scopes inside steps sampled one step in " + std::to_string(r.perf_sample_steps) +
                " (estimates, marked ~)";
    h += fact("GPU timing", timing);
    std::string gpu = r.gpu_name.empty() ? "not recorded" : escape(r.gpu_name);
    if (r.device_count > 0) gpu += " (" + std::to_string(r.device_count) + " device(s)";
    if (r.device_count > 0 && !r.driver_version.empty())
      gpu += ", driver " + escape(r.driver_version);
    if (r.device_count > 0) gpu += ")";
    h += fact("GPU", gpu);
    if (!r.gated)
      h += fact("gate", "not recorded");
    else if (!*r.gated)
      h += fact("gate", "not gated");
    else
      h += fact("gate", "<span class=\"" + std::string(r.gate_verdict == "valid" ? "ok" : "fault") +
                            "\">" +
                            escape(r.gate_verdict.empty() ? "gated, no verdict" : r.gate_verdict) +
                            "</span>");
    if (r.requests_counted)
      h += fact("requests", std::to_string(*r.requests_counted) + " counted, " +
                                std::to_string(r.requests_warmups.value_or(0)) +
                                " warm-up excluded");
    else
      h += fact("requests", "not recorded");
    if (!r.window.empty()) h += fact("window", escape(r.window) + ", in every table below");
    if (!r.outside.empty()) h += fact("outside requests", escape(r.outside) + ", in no table");
    h += fact("overhead", r.overhead.empty() ? "not recorded" : escape(r.overhead));
    std::string faults;
    for (const auto& [name, n] : r.faults)
      faults += (faults.empty() ? "" : ", ") + escape(name) + "=" + std::to_string(n);
    if (r.unclosed_ranges > 0 && faults.find("unclosed_at_stop") == std::string::npos)
      faults += (faults.empty() ? "" : ", ") + std::string("unclosed ranges=") +
                std::to_string(r.unclosed_ranges);
    h += fact("faults", !r.has_faults ? "not recorded"
                        : faults.empty()
                            ? "<span class=\"ok\">none</span>"
                            : "<span class=\"fault\" data-faults=\"" +
                                  std::to_string(r.faults.size()) + "\">" + faults + "</span>");
  }
  if (r.merge.present) {
    std::string ranks = std::to_string(r.merge.ranks.size()) + " ranks (rank from " +
                        escape(r.merge.rank_source.empty() ? "?" : r.merge.rank_source) + "): ";
    for (std::size_t i = 0; i < r.merge.ranks.size(); ++i)
      ranks += (i ? ", " : "") + std::to_string(r.merge.ranks[i].first) + " " +
               escape(r.merge.ranks[i].second);
    h += fact("merged", ranks);
  }
  h += "</dl>\n";
  b.html(h);
}

page build_page(const std::vector<run_view>& runs, const page_options& o) {
  page_builder b;
  std::string title;
  if (o.kind == page_kind::single) {
    title = "diffscope report: " + runs.at(0).label;
    b.section("run", "What was measured");
    run_header(b, runs[0]);
    b.end_section();
    single_sections(b, runs[0]);
  } else {
    title = o.kind == page_kind::repeated
                ? "diffscope report: " + std::to_string(o.base_runs) + " " + o.base_label +
                      " run(s) against " + std::to_string(runs.size() - o.base_runs) + " " +
                      o.new_label + " run(s)"
                : "diffscope report: " + std::to_string(runs.size()) + " dumps compared";
    compare_sections(b, runs, o);
  }
  std::string h =
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
      "<meta name=\"generator\" content=\"diffscope " DIFFSCOPE_VERSION_STRING "\">\n<title>" +
      escape(title) + "</title>\n<style>" + style_sheet +
      "</style>\n</head>\n<body>\n<header><h1>" + escape(title) +
      "</h1>\n<p class=\"sub\">diffscope " DIFFSCOPE_VERSION_STRING
      " report; hover a bar or point for its exact value.</p>\n<nav class=\"toc\">";
  for (const auto& [id, name] : b.toc()) h += "<a href=\"#" + id + "\">" + escape(name) + "</a>";
  h += "</nav></header>\n<main>\n" + b.body() + "</main>\n<footer>Made by <code>" +
       escape(o.command) +
       "</code> from the dump(s) alone; times in milliseconds.</footer>\n<script>" + script +
       "</script>\n</body>\n</html>\n";
  return {std::move(h), std::move(b.charts())};
}

}  // namespace diffscope::cli::report
