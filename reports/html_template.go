package reports

import "html/template"

// pageTemplate lays out the report. Every value from the inputs goes
// through html/template's contextual escaping; only the chart markup
// (generated here, its text escaped by the SVG writer), the CSS, the
// script and the embedded JSON (HTML-safe by encoding/json) are trusted.
var pageTemplate = template.Must(template.New("report").Parse(pageHTML))

const pageHTML = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="loadcap{{with .Version}} {{.}}{{end}}">
<title>{{.Title}}</title>
<style>{{.CSS}}</style>
</head>
<body>
<header id="verdict" class="verdict {{if .Verdict.Pass}}pass{{else}}fail{{end}}">
<h1>{{.Title}}</h1>
<p class="badge"><strong>{{if .Verdict.Pass}}PASS{{else}}FAIL{{end}}</strong> exit code {{.Verdict.ExitCode}}: {{.Verdict.Meaning}}</p>
{{- with .Verdict.Stop}}
<div class="stop" role="alert"><p class="stop-line"><strong>{{.Headline}}</strong> {{.Reason}}</p>
<dl class="stop-detail">{{range .Details}}<div><dt>{{.Key}}</dt><dd>{{.Value}}</dd></div>{{end}}</dl></div>
{{- end}}
<dl class="cards">
{{- range .Verdict.Cards}}
<div class="card {{.Class}}"><dt>{{.Label}}</dt><dd class="value">{{.Value}}</dd>{{with .Note}}<dd class="note">{{.}}</dd>{{end}}</div>
{{- end}}
</dl>
</header>
{{- if .Nav}}
<nav aria-label="sections"><ul>
{{- range .Nav}}<li><a href="#{{.ID}}">{{.Label}}</a></li>{{end -}}
</ul></nav>
{{- end}}
<main>
{{- with .Drill}}
<section id="drill">
<h2>Drill</h2>
<table class="kv"><tbody>
{{- range .Meta}}
<tr><th scope="row">{{.Key}}</th><td>{{.Value}}</td></tr>
{{- end}}
</tbody></table>
{{- if .Stages}}
<div class="scroll">
<table class="stages"><caption>Stages as planned, and how each went (achieved and p99 over the stage's hold)</caption>
<thead><tr><th scope="col" class="num">#</th><th scope="col">stage</th><th scope="col">from – to</th><th scope="col" class="num">ramp</th><th scope="col" class="num">hold</th><th scope="col" class="num">planned rate</th><th scope="col" class="num">achieved</th><th scope="col" class="num">p99</th><th scope="col">verdict</th></tr></thead><tbody>
{{- range .Stages}}
<tr{{with .Class}} class="{{.}}"{{end}}><th scope="row" class="num">{{.N}}</th><td>{{.Name}}</td><td class="num">{{.Window}}</td><td class="num">{{.Ramp}}</td><td class="num">{{.Hold}}</td><td class="num">{{.Rate}}</td><td class="num">{{.Achieved}}</td><td class="num">{{.P99}}</td><td>{{if .Verdict}}{{.Verdict}}{{else}}-{{end}}</td></tr>
{{- end}}
</tbody></table>
</div>
{{- end}}
{{- range .Charts}}{{template "figure" .}}{{end}}
</section>
{{- with .Guard}}
<section id="guard">
<h2>Guard</h2>
{{- with $.Verdict.Stop}}
<ul class="notes"><li class="bad"><strong>{{.Headline}}</strong> {{.Reason}}</li></ul>
{{- else}}
<ul class="notes"><li class="ok">The guard did not stop the drill.</li></ul>
{{- end}}
<div class="cols">
<table class="kv"><caption>Settings</caption><tbody>
{{- range .Settings}}
<tr><th scope="row">{{.Key}}</th><td>{{.Value}}</td></tr>
{{- end}}
</tbody></table>
{{- if .Rules}}
<table class="rules"><caption>Rules: one breached K evaluations in a row stops the drill</caption>
<thead><tr><th scope="col">rule</th><th scope="col">kind</th><th scope="col">watches</th><th scope="col">limit</th><th scope="col" class="num">K</th><th scope="col">evaluations without data</th></tr></thead><tbody>
{{- range .Rules}}
<tr{{if .Stopped}} class="stopped"{{end}}><th scope="row">{{.Name}}{{if .Stopped}} <span class="tag bad">stopped the drill</span>{{end}}</th><td>{{.Kind}}</td><td><code>{{.Expr}}</code></td><td>{{.Limit}}</td><td class="num">{{.K}}</td><td{{if .Silent}} class="bad"{{end}}>{{.NoData}}</td></tr>
{{- end}}
</tbody></table>
{{- end}}
</div>
</section>
{{- end}}
{{- if or .Services .PlanError}}
<section id="services">
<h2>Capacity measured per service</h2>
{{- if .Services}}
<div class="scroll">
<table class="plan drill-services"><caption>Each service's capacity: its rate where the drill saturated it, or the utilization law (workers × requests ÷ busy seconds) over the stages before the first saturation{{with .Saturated}}; {{.}} saturated: the bottleneck{{end}}</caption>
<thead><tr><th scope="col">service</th><th scope="col" class="num">capacity, all replicas</th><th scope="col" class="num">per replica</th><th scope="col" class="num">fan-out</th><th scope="col">measured</th><th scope="col">stage</th></tr></thead><tbody>
{{- range .Services}}
<tr{{if .Bottleneck}} class="bottleneck"{{end}}><th scope="row">{{.Name}}{{if .Bottleneck}} <span class="tag">bottleneck</span>{{end}}</th><td class="num">{{.Capacity}}</td><td class="num">{{.PerReplica}}</td><td class="num">{{.Fanout}}</td><td>{{.Measured}}</td><td>{{.Stage}}</td></tr>
{{- end}}
</tbody></table>
</div>
{{- if .Bound}}
<p class="hint">A capacity marked ≥ is a lower bound: the service never saturated and exports no busy time (or served too few requests for the utilization law), so it may carry more. {{if .Saturated}}Services that call the bottleneck wait on it and slow down with it, so their highest rate says nothing more.{{else}}No service saturated: a later drill at a higher rate would find the bottleneck.{{end}}</p>
{{- end}}
{{- end}}
{{- with .PlanError}}
<ul class="notes"><li class="warn">No capacity plan was computed: {{.}}</li></ul>
{{- end}}
</section>
{{- end}}
{{- if or .PreFlight .Audit}}
<section id="isolation">
<h2>Isolation</h2>
{{- with .PreFlight}}
<h3>Pre-flight check</h3>
<ul class="notes"><li class="{{if .OK}}ok{{else}}bad{{end}}">{{.Summary}}</li>
{{- with .Error}}<li class="bad">{{.}}</li>{{end}}
{{- range .Problems}}<li class="bad">{{.}}</li>{{end}}
{{- range .Signals}}<li class="bad">signal unreachable: {{.}}</li>{{end}}</ul>
{{- end}}
{{- with .Audit}}
<h3>Audit after the drill</h3>
<ul class="notes"><li class="{{if not .OK}}bad{{else if .Unchecked}}warn{{else}}ok{{end}}">{{.Summary}}</li>
{{- with .Error}}<li class="bad">{{.}}</li>{{end}}
{{- range .Unchecked}}<li class="warn">not checked: {{.}}</li>{{end}}</ul>
{{- if .Tables}}
<table class="kv"><tbody><tr><th scope="row">tables scanned</th><td>{{.Tables}}</td></tr>
{{- range .Counts}}
<tr class="bad"><th scope="row">{{.Key}}</th><td>{{.Value}}</td></tr>
{{- end}}
</tbody></table>
{{- end}}
{{- if .Leaks}}
<div class="scroll">
<table class="leaks"><caption>Leaked rows</caption>
<thead><tr><th scope="col">table</th><th scope="col">key</th><th scope="col">why</th></tr></thead><tbody>
{{- range .Leaks}}
<tr><td>{{.Table}}</td><td><code>{{if .Key}}{{.Key}}{{else}}-{{end}}</code></td><td>{{.Why}}</td></tr>
{{- end}}
</tbody></table>
</div>
{{- end}}
{{- end}}
</section>
{{- end}}
{{- with .Manifests}}
<section id="manifests">
<h2>Autoscaler manifests</h2>
<table class="manifests"><caption>Written with this report; paths are relative to it</caption>
<thead><tr><th scope="col">kind</th><th scope="col">service</th><th scope="col">file</th></tr></thead><tbody>
{{- range .}}
<tr><td>{{.Kind}}</td><td>{{.Service}}</td><td><code>{{.Path}}</code>{{if .YAML}}<details><summary>YAML</summary><pre><code>{{.YAML}}</code></pre></details>{{end}}</td></tr>
{{- end}}
</tbody></table>
</section>
{{- end}}
{{- end}}
{{- with .Run}}
<section id="run">
<h2>Run</h2>
<div class="cols">
<table class="kv"><caption>Metadata</caption><tbody>
{{- range .Meta}}
<tr><th scope="row">{{.Key}}</th><td>{{.Value}}</td></tr>
{{- end}}
</tbody></table>
{{- if .Thresholds}}
<table class="thresholds"><caption>Thresholds</caption>
<thead><tr><th scope="col">metric</th><th scope="col">threshold</th><th scope="col" class="num">value</th><th scope="col">result</th></tr></thead><tbody>
{{- range .Thresholds}}
<tr class="{{if .Passed}}ok{{else}}bad{{end}}"><td>{{.Metric}}</td><td><code>{{.Expr}}</code></td><td class="num">{{.Value}}</td><td>{{if .Passed}}passed{{else}}FAILED{{if .Abort}} (aborted the run){{end}}{{end}}</td></tr>
{{- end}}
</tbody></table>
{{- end}}
</div>
<table class="stats"><caption>Requests: {{.LatencyFrom}}, exact from the HDR histograms</caption>
<thead><tr><th scope="col">request</th><th scope="col" class="num">count</th><th scope="col" class="num">req/s</th><th scope="col" class="num">errors</th><th scope="col" class="num">error %</th><th scope="col" class="num">p50</th><th scope="col" class="num">p90</th><th scope="col" class="num">p95</th><th scope="col" class="num">p99</th><th scope="col" class="num">p99.9</th><th scope="col" class="num">max</th><th scope="col" class="num">mean</th><th scope="col" class="num">service p99</th></tr></thead><tbody>
{{- range .Requests}}
<tr{{if .All}} class="total"{{end}}><th scope="row">{{.Name}}</th><td class="num">{{.Count}}</td><td class="num">{{.RPS}}</td><td class="num{{if .Failing}} bad{{end}}">{{.Errors}}</td><td class="num{{if .Failing}} bad{{end}}">{{.ErrorPct}}</td><td class="num">{{.P50}}</td><td class="num">{{.P90}}</td><td class="num">{{.P95}}</td><td class="num">{{.P99}}</td><td class="num">{{.P999}}</td><td class="num">{{.Max}}</td><td class="num">{{.Mean}}</td><td class="num">{{.ServiceP99}}</td></tr>
{{- end}}
</tbody></table>
</section>
{{- if .Latency}}
<section id="latency">
<h2>Latency over time</h2>
{{- range .Latency}}{{template "figure" .}}{{end}}
</section>
{{- end}}
{{- if .Traffic}}
<section id="traffic">
<h2>Traffic</h2>
{{- range .Traffic}}{{template "figure" .}}{{end}}
</section>
{{- end}}
{{- if or .Errors .TopErrors}}
<section id="errors">
<h2>Errors</h2>
{{- range .Errors}}{{template "figure" .}}{{end}}
{{- if .TopErrors}}
<table class="errors"><caption>Top errors</caption>
<thead><tr><th scope="col">class</th><th scope="col">request</th><th scope="col" class="num">count</th><th scope="col" class="num">share</th><th scope="col">example</th></tr></thead><tbody>
{{- range .TopErrors}}
<tr><td>{{.Class}}</td><td>{{.Request}}</td><td class="num">{{.Count}}</td><td class="num">{{.Share}}</td><td><code>{{.Sample}}</code></td></tr>
{{- end}}
</tbody></table>
{{- end}}
</section>
{{- end}}
<section id="distribution">
<h2>Latency distribution</h2>
{{- range .Dist}}{{template "figure" .}}{{end}}
</section>
<section id="quality">
<h2>Data quality</h2>
<ul class="notes">
{{- range .Notes}}
<li class="{{.Level}}">{{.Text}}</li>
{{- end}}
</ul>
</section>
{{- end}}
{{- with .Find}}
<section id="capacity">
<h2>{{if .Drill}}Stages, measured{{else}}Capacity{{end}}</h2>
<dl class="cards">
{{- range .Cards}}
<div class="card"><dt>{{.Label}}</dt><dd class="value">{{.Value}}</dd>{{with .Note}}<dd class="note">{{.}}</dd>{{end}}</div>
{{- end}}
</dl>
{{- if .Notes}}
<ul class="notes">{{range .Notes}}<li class="warn">{{.}}</li>{{end}}</ul>
{{- end}}
<div class="scroll">
<table class="steps"><caption>{{if .Drill}}Stages: each clause of the guard's drill rules on the stage's hold (✓ met, ✗ not){{else}}Steps: each SLO clause on the step's measured window (✓ met, ✗ not){{end}}</caption>
<thead><tr><th scope="col" class="num">{{if .Drill}}#{{else}}step{{end}}</th><th scope="col">{{if .Drill}}stage{{else}}phase{{end}}</th><th scope="col" class="num">offered</th><th scope="col" class="num" title="successful responses per second; failures are in errors">goodput</th><th scope="col" class="num">in flight</th><th scope="col" class="num">p50</th><th scope="col" class="num">p99</th><th scope="col" class="num">p99.9</th><th scope="col" class="num">errors</th><th scope="col" class="num">dropped</th>
{{- range .Clauses}}<th scope="col" class="num"><code>{{.}}</code></th>{{end}}<th scope="col">result</th></tr></thead><tbody>
{{- range .Steps}}
<tr class="{{if .Passed}}ok{{else}}bad{{end}}{{if .Max}} max{{end}}"><th scope="row" class="num">{{.N}}</th><td>{{.Phase}}{{if .Max}} <span class="tag">max QPS</span>{{end}}{{if .Knee}} <span class="tag">knee</span>{{end}}</td><td class="num">{{.Offered}}</td><td class="num">{{.Achieved}}</td><td class="num">{{.Concurrency}}{{if not .LittleOK}} <span class="tag warn" title="mean in flight is off Little's law X·R by over 10%: not in steady state">unsteady</span>{{end}}</td><td class="num">{{.P50}}</td><td class="num">{{.P99}}</td><td class="num">{{.P999}}</td><td class="num">{{.Errors}}</td><td class="num">{{.Dropped}}</td>
{{- range .Clauses}}<td class="num {{if .Absent}}{{else if .Passed}}ok{{else}}bad{{end}}">{{if .Absent}}-{{else}}{{.Value}} {{if .Passed}}✓{{else}}✗{{end}}{{end}}</td>{{end}}<td>{{if .Passed}}pass{{else}}fail: {{.Reason}}{{end}}</td></tr>
{{- end}}
</tbody></table>
</div>
{{- range .Charts}}{{template "figure" .}}{{end}}
{{- if or .USL .USLNote}}
<table class="kv"><caption>USL fit</caption><tbody>
{{- range .USL}}
<tr><th scope="row">{{.Key}}</th><td>{{.Value}}</td></tr>
{{- end}}
</tbody></table>
{{- if .USLNote}}<ul class="notes">{{range .USLNote}}<li class="warn">{{.}}</li>{{end}}</ul>{{end}}
{{- end}}
{{- if .SvcRows}}
<div class="scroll">
<table class="services"><caption>Services scraped at each {{if .Drill}}stage{{else}}step{{end}}: mean latency, request rate, CPU cores{{with .FirstSaturated}}; {{.}} saturated first{{end}}</caption>
<thead><tr><th scope="col" class="num">step</th><th scope="col" class="num">offered</th>{{range .SvcNames}}<th scope="col" class="num">{{.}}</th>{{end}}</tr></thead><tbody>
{{- range .SvcRows}}
<tr{{if .Saturated}} class="max"{{end}}><th scope="row" class="num">{{.Step}}</th><td class="num">{{.Offered}}</td>{{range .Cells}}<td class="num{{if .First}} bad{{end}}"{{with .Err}} title="{{.}}"{{end}}>{{.Latency}}{{if .Rate}}<br><small>{{.Rate}}/s · {{.CPU}} cores</small>{{end}}</td>{{end}}</tr>
{{- end}}
</tbody></table>
</div>
{{- end}}
</section>
{{- end}}
{{- with .Plan}}
<section id="plan">
<h2>Capacity plan</h2>
<table class="kv"><tbody>
{{- range .Summary}}
<tr><th scope="row">{{.Key}}</th><td>{{.Value}}</td></tr>
{{- end}}
</tbody></table>
{{- if .Warnings}}<ul class="notes">{{range .Warnings}}<li class="warn">{{.}}</li>{{end}}</ul>{{end}}
<div class="scroll">
<table class="plan"><caption>Replicas per service for the peak (bottleneck highlighted)</caption>
<thead><tr><th scope="col">service</th><th scope="col" class="num">capacity/replica</th><th scope="col" class="num">fanout</th><th scope="col" class="num">load at peak</th><th scope="col" class="num">safe/replica</th><th scope="col" class="num">current</th><th scope="col" class="num">needed</th><th scope="col" class="num">change</th><th scope="col" class="num">autoscaler max</th><th scope="col" class="num">saturates at (entry req/s) now</th><th scope="col" class="num">… planned</th></tr></thead><tbody>
{{- range .Services}}
<tr{{if .Bottleneck}} class="bottleneck"{{end}}><th scope="row">{{.Name}}{{if .Bottleneck}} <span class="tag">bottleneck</span>{{end}}{{if .First}} <span class="tag warn">saturates first</span>{{end}}</th><td class="num">{{.Capacity}}</td><td class="num">{{.Fanout}}</td><td class="num">{{.Load}}</td><td class="num">{{.Safe}}</td><td class="num">{{.Current}}</td><td class="num">{{.Replicas}}{{if .OverBudget}} <span class="tag warn">over budget</span>{{end}}</td><td class="num">{{.Delta}}</td><td class="num">{{.Max}}</td><td class="num">{{.SatNow}}</td><td class="num">{{.SatPlanned}}</td></tr>
{{- end}}
<tr class="total"><th scope="row">total</th><td></td><td></td><td></td><td></td><td class="num">{{.Totals.Current}}</td><td class="num">{{.Totals.Replicas}}</td><td class="num">{{.Totals.Delta}}</td><td></td><td></td><td></td></tr>
</tbody></table>
</div>
{{- if .SensRows}}
<div class="scroll">
<table class="sensitivity"><caption>Sensitivity: replicas needed if the peak differs</caption>
<thead><tr><th scope="col">peak</th>{{range .SensHeader}}<th scope="col" class="num">{{.}}</th>{{end}}</tr></thead><tbody>
<tr><th scope="row">entry req/s</th>{{range .SensEntry}}<td class="num">{{.}}</td>{{end}}</tr>
{{- range .SensRows}}
<tr><th scope="row">{{.Name}}</th>{{range .Cells}}<td class="num">{{.}}</td>{{end}}</tr>
{{- end}}
<tr class="total"><th scope="row">total</th>{{range .SensTotal}}<td class="num">{{.}}</td>{{end}}</tr>
</tbody></table>
</div>
{{- end}}
</section>
{{- end}}
{{- with .Verify}}
<section id="verify">
<h2>Plan verification</h2>
<p class="verdict-line {{if .Held}}ok{{else}}bad{{end}}"><strong>{{if .Held}}Plan verified: every check held{{else}}Plan NOT verified{{end}}</strong> · bottleneck {{.Bottleneck}}</p>
{{- range .Checks}}
<div class="scroll">
<table class="verify"><caption>{{.Name}}: {{.About}} · {{.Line}}</caption>
<thead><tr><th scope="col">service</th><th scope="col" class="num">replicas</th><th scope="col" class="num">predicted req/s</th><th scope="col" class="num">measured req/s</th><th scope="col" class="num">per replica</th><th scope="col" class="num">predicted utilization</th><th scope="col" class="num">measured utilization</th><th scope="col" class="num">ceiling</th><th scope="col" class="num">mean latency</th><th scope="col" class="num">failed req/s</th></tr></thead><tbody>
{{- range .Rows}}
<tr{{if .Over}} class="bad"{{end}}><th scope="row">{{.Name}}</th><td class="num">{{.Replicas}}</td><td class="num">{{.Predicted}}</td>{{if .Error}}<td colspan="7">{{.Error}}</td>{{else}}<td class="num">{{.Measured}}</td><td class="num">{{.PerReplica}}</td><td class="num">{{.PredUtil}}</td><td class="num">{{.Util}}{{if .Over}} <span class="tag warn">over ceiling</span>{{end}}</td><td class="num">{{.Ceiling}}</td><td class="num">{{.Latency}}</td><td class="num">{{.Failed}}</td>{{end}}</tr>
{{- end}}
</tbody></table>
</div>
{{- end}}
</section>
{{- end}}
{{- with .Sim}}
<section id="simulate">
<h2>Autoscaling, simulated</h2>
<p>The plan's HPA replayed second by second over the traffic ({{.About}}).</p>
{{- range .Cases}}
<p class="verdict-line {{if .Held}}ok{{else}}bad{{end}}"><strong>{{.Name}}</strong> ({{.About}}): {{if .Held}}held{{else}}NOT held{{end}}</p>
<ul class="notes">{{range .Lines}}<li>{{.}}</li>{{end}}</ul>
{{- end}}
{{- range .Charts}}{{template "figure" .}}{{end}}
</section>
{{- end}}
{{- with .Compare}}
<section id="compare">
<h2>Comparison with the baseline</h2>
<p class="verdict-line {{if .Regressed}}bad{{else}}ok{{end}}"><strong>{{if .Regressed}}Regression against the baseline{{else}}No regression against the baseline{{end}}</strong>{{if .Resamples}}: a limit counts as exceeded only when the change and its whole 95% interval (a block bootstrap over the runs' seconds, {{.Resamples}} resamples) are beyond it.{{end}}</p>
{{- if .Side}}
<div class="cols">
<table class="side"><caption>Key figures, all requests</caption>
<thead><tr><th scope="col">figure</th><th scope="col" class="num">baseline</th><th scope="col" class="num">run</th><th scope="col" class="num">change</th></tr></thead><tbody>
{{- range .Side}}
<tr><th scope="row">{{.Figure}}</th><td class="num">{{.Baseline}}</td><td class="num">{{.Run}}</td><td class="num{{if .Worse}} worse{{else if .Better}} better{{end}}">{{.Delta}}</td></tr>
{{- end}}
</tbody></table>
<table class="kv"><caption>Baseline</caption><tbody>
{{- range .Baseline}}
<tr><th scope="row">{{.Key}}</th><td>{{.Value}}</td></tr>
{{- end}}
</tbody></table>
</div>
{{- end}}
{{- if .Checks}}
<div class="scroll">
<table class="checks"><caption>Allowances checked</caption>
<thead><tr><th scope="col">request</th><th scope="col">allowed</th><th scope="col" class="num">baseline</th><th scope="col" class="num">run</th><th scope="col" class="num">change</th><th scope="col" class="num">95% interval</th><th scope="col">verdict</th></tr></thead><tbody>
{{- range .Checks}}
<tr class="{{if .Regressed}}bad{{else if .WithinNoise}}warn{{else}}ok{{end}}"><th scope="row">{{.Request}}</th><td><code>{{.Allowance}}</code></td><td class="num">{{.Baseline}}</td><td class="num">{{.Run}}</td><td class="num">{{.Change}}</td><td class="num"{{with .Noise}} title="noise not assessed: {{.}}"{{end}}>{{.CI}}</td><td>{{.Verdict}}</td></tr>
{{- end}}
</tbody></table>
</div>
{{- end}}
{{- range .Charts}}{{template "figure" .}}{{end}}
</section>
{{- end}}
</main>
<footer><p>Made by loadcap{{with .Version}} {{.}}{{end}}. This page is self-contained; its data is embedded as JSON in the element <code>#loadcap-data</code>.</p></footer>
<script type="application/json" id="loadcap-data">{{.Data}}</script>
<script>{{.Script}}</script>
</body>
</html>
{{define "figure"}}
<figure class="chart" id="fig-{{.ID}}" data-frame="{{.Frame}}">{{.SVG}}<figcaption>{{.Caption}} <output aria-live="polite"></output></figcaption></figure>
{{- end}}`

// pageCSS is the report's only style sheet: system fonts, nothing fetched.
const pageCSS = `
:root{--fg:#1d1f21;--muted:#5f6368;--line:#dadce0;--ok:#1e7e34;--okbg:#e6f4ea;--warn:#8a6100;--warnbg:#fef7e0;--bad:#b3261e;--badbg:#fce8e6;--accent:#1f77b4}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--fg);background:#fff}
header.verdict{padding:20px 28px 12px;border-bottom:4px solid var(--line)}
header.pass{border-color:var(--ok);background:var(--okbg)}
header.fail{border-color:var(--bad);background:var(--badbg)}
h1{font-size:20px;margin:0 0 6px;word-break:break-all}
h2{font-size:18px;margin:28px 0 10px;padding-bottom:4px;border-bottom:1px solid var(--line)}
.badge{margin:0 0 10px;color:var(--muted)}
.badge strong{display:inline-block;padding:2px 12px;margin-right:8px;border-radius:4px;color:#fff;font-size:16px;letter-spacing:.05em}
.pass .badge strong{background:var(--ok)}
.fail .badge strong{background:var(--bad)}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:8px 0}
.card{background:#fff;border:1px solid var(--line);border-left:4px solid var(--accent);border-radius:4px;padding:6px 12px;min-width:150px}
.card.ok{border-left-color:var(--ok)}.card.warn{border-left-color:#f9ab00}.card.bad{border-left-color:var(--bad)}
.card dt{font-size:12px;color:var(--muted);text-transform:uppercase;letter-spacing:.04em}
.card dd{margin:0}.card .value{font-size:18px;font-weight:600;font-variant-numeric:tabular-nums}.card .note{font-size:12px;color:var(--muted)}
nav{position:sticky;top:0;z-index:1;background:#fff;border-bottom:1px solid var(--line);padding:0 28px}
nav ul{list-style:none;margin:0;padding:0;display:flex;flex-wrap:wrap;gap:2px 16px}
nav a{display:block;padding:8px 0;color:var(--accent);text-decoration:none}
nav a:hover{text-decoration:underline}
main{padding:0 28px 24px;max-width:1400px}
section{margin-bottom:8px}
.cols{display:flex;flex-wrap:wrap;gap:24px;align-items:flex-start}
.scroll{overflow-x:auto}
table{border-collapse:collapse;margin:10px 0;font-variant-numeric:tabular-nums}
caption{text-align:left;font-weight:600;padding:4px 0;color:var(--fg)}
th,td{padding:4px 10px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
thead th{font-size:12px;color:var(--muted);font-weight:600;border-bottom:2px solid var(--line);white-space:nowrap}
tbody th{font-weight:500}
.num{text-align:right;white-space:nowrap}
table.kv th{color:var(--muted);font-weight:500;white-space:nowrap}
table.kv td{word-break:break-word;max-width:60ch}
tr.total th,tr.total td{font-weight:600;border-top:2px solid var(--line)}
tr.bad td:last-child,td.bad{color:var(--bad)}
tr.ok td:last-child,td.ok{color:var(--ok)}
tr.warn td:last-child{color:var(--warn)}
tr.max,tr.bottleneck{background:#e8f0fe}
td.worse{color:var(--bad)}td.better{color:var(--ok)}
.tag{display:inline-block;font-size:11px;padding:0 6px;border-radius:8px;background:#e8f0fe;color:#174ea6;font-weight:500}
.tag.warn{background:var(--warnbg);color:var(--warn)}
code{font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;word-break:break-all}
ul.notes{padding-left:0;list-style:none}
ul.notes li{margin:6px 0;padding:6px 10px;border-left:4px solid var(--line);background:#f8f9fa}
ul.notes li.ok{border-color:var(--ok);background:var(--okbg)}
ul.notes li.warn{border-color:#f9ab00;background:var(--warnbg)}
ul.notes li.bad{border-color:var(--bad);background:var(--badbg)}
.verdict-line{padding:8px 12px;border-radius:4px}
.verdict-line.ok{background:var(--okbg)}.verdict-line.bad{background:var(--badbg)}
figure.chart{margin:16px 0;max-width:960px}
figure.chart svg{display:block;width:100%;height:auto;border:1px solid var(--line);border-radius:4px;background:#fff}
header .stop{margin:4px 0 10px;padding:8px 12px;border:2px solid var(--bad);border-radius:4px;background:#fff}
.stop-line{margin:0;font-size:16px}.stop-line strong{color:var(--bad);letter-spacing:.02em}
.stop-detail{display:flex;flex-wrap:wrap;gap:4px 20px;margin:6px 0 0;font-size:13px}
.stop-detail dt{display:inline;color:var(--muted)}.stop-detail dt::after{content:": "}.stop-detail dd{display:inline;margin:0;font-variant-numeric:tabular-nums}
h3{font-size:15px;margin:16px 0 6px}
tr.stopped{background:var(--badbg)}
.tag.bad{background:var(--badbg);color:var(--bad)}
p.hint{color:var(--muted);max-width:90ch}
details summary{cursor:pointer;color:var(--accent);font-size:12px}
pre{margin:6px 0;padding:8px;background:#f8f9fa;border:1px solid var(--line);border-radius:4px;overflow:auto;max-width:100ch;max-height:40em}
pre code{word-break:normal;white-space:pre}
figcaption{font-size:12px;color:var(--muted);margin-top:4px}
figcaption output{display:block;min-height:1.4em;color:var(--fg);font-variant-numeric:tabular-nums}
footer{padding:12px 28px;color:var(--muted);font-size:12px;border-top:1px solid var(--line)}
@media print{
 nav,figcaption output{display:none}
 body{font-size:11px}
 header.verdict{-webkit-print-color-adjust:exact;print-color-adjust:exact}
 main,header.verdict,footer{padding-left:0;padding-right:0}
 figure.chart,table,ul.notes li{break-inside:avoid}
 h2{break-after:avoid}
 .scroll{overflow:visible}
 a{color:inherit;text-decoration:none}
}
`

// pageJS reads the value under the pointer off a chart: a crosshair and the
// x and y there. Without it the page loses nothing but that.
const pageJS = `
(function(){
"use strict";
function fmt(v){var a=Math.abs(v);if(a>=1000)return v.toFixed(0);if(a>=100)return v.toFixed(1);if(a>=1)return v.toFixed(2);return v.toPrecision(3);}
function scale(f,lo,hi,log){return log?Math.pow(10,Math.log10(lo)+f*(Math.log10(hi)-Math.log10(lo))):lo+f*(hi-lo);}
var figs=document.querySelectorAll("figure.chart[data-frame]");
Array.prototype.forEach.call(figs,function(fig){
 var svg=fig.querySelector("svg"),out=fig.querySelector("output"),fr;
 if(!svg||!out)return;
 try{fr=JSON.parse(fig.getAttribute("data-frame"));}catch(e){return;}
 var line=document.createElementNS(svg.namespaceURI,"line");
 line.setAttribute("stroke","#999");line.setAttribute("stroke-width","0.75");line.setAttribute("visibility","hidden");
 line.setAttribute("y1",fr.t);line.setAttribute("y2",fr.b);
 svg.appendChild(line);
 svg.addEventListener("pointermove",function(ev){
  var m=svg.getScreenCTM();if(!m)return;
  var p=svg.createSVGPoint();p.x=ev.clientX;p.y=ev.clientY;p=p.matrixTransform(m.inverse());
  if(p.x<fr.l||p.x>fr.r||p.y<fr.t||p.y>fr.b){line.setAttribute("visibility","hidden");out.textContent="";return;}
  var x=scale((p.x-fr.l)/(fr.r-fr.l),fr.x0,fr.x1,fr.lx),y=scale((fr.b-p.y)/(fr.b-fr.t),fr.y0,fr.y1,fr.ly);
  line.setAttribute("x1",p.x);line.setAttribute("x2",p.x);line.setAttribute("visibility","visible");
  var xs=fr.xl==="percentile"?fmt(100*(1-1/x))+"%":fmt(x)+" "+fr.xl;
  out.textContent="at "+xs+": "+fmt(y)+" "+fr.yl;
 });
 svg.addEventListener("pointerleave",function(){line.setAttribute("visibility","hidden");out.textContent="";});
});
})();
`
