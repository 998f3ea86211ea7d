// Draws grounding results: one block per video (player + thumbnail strip) with, per query, a timeline of
// the top windows against the duration, the saliency curve and a list of moments. Clicking a window
// (bar or row) seeks the player to its start and plays. Used by the HTML report and the web page alike.
"use strict";
(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const W = 720;

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function svgEl(tag, attrs) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    return node;
  }
  function fmt(t) {
    const m = Math.floor(t / 60), s = t - 60 * m;
    return (m ? m + ":" + (s < 10 ? "0" : "") : "") + s.toFixed(1);
  }
  function seek(player, start) {
    if (!player) return;
    player.currentTime = start;
    const p = player.play();
    if (p && p.catch) p.catch(() => {});
  }

  function timeline(result, duration, player) {
    const rows = result.pred_relevant_windows;
    const h = 18 * Math.max(rows.length, 1) + 22;
    const svg = svgEl("svg", {class: "timeline", viewBox: `0 0 ${W} ${h}`, width: W, height: h});
    svg.appendChild(svgEl("rect", {x: 0, y: 0, width: W, height: h - 18, class: "track"}));
    rows.forEach(([s, e, score], i) => {
      const bar = svgEl("rect", {x: (s / duration) * W, y: 4 + 18 * i, width: Math.max(2, ((e - s) / duration) * W),
                                 height: 14, class: "bar rank" + Math.min(i, 4)});
      const title = svgEl("title");
      title.textContent = `#${i + 1}: ${fmt(s)}–${fmt(e)} s (score ${score.toFixed(3)})`;
      bar.appendChild(title);
      bar.addEventListener("click", () => seek(player, s));
      svg.appendChild(bar);
    });
    for (let k = 0; k <= 4; k++) {  // axis ticks
      const x = (k / 4) * (W - 1);
      svg.appendChild(svgEl("line", {x1: x, x2: x, y1: h - 18, y2: h - 13, class: "tick"}));
      const label = svgEl("text", {x: Math.min(Math.max(x, 2), W - 44), y: h - 2, class: "tick-label"});
      label.textContent = fmt((k / 4) * duration) + " s";
      svg.appendChild(label);
    }
    return svg;
  }

  function saliencyCurve(scores, duration, clipLen) {
    const h = 60;
    const svg = svgEl("svg", {class: "saliency", viewBox: `0 0 ${W} ${h}`, width: W, height: h});
    if (!scores.length) return svg;
    const lo = Math.min(...scores), hi = Math.max(...scores), span = hi - lo || 1;
    const step = clipLen || duration / scores.length;
    const pts = scores.map((v, i) => `${(Math.min((i + 0.5) * step, duration) / duration) * W},${h - 4 - ((v - lo) / span) * (h - 8)}`);
    svg.appendChild(svgEl("polyline", {points: pts.join(" "), class: "curve"}));
    return svg;
  }

  const IN_VIDEO_THRESHOLD = 0.5;  // grounding.inference.records.IN_VIDEO_THRESHOLD

  function renderQuery(result, video, player) {
    const box = el("section", {class: "query"});
    box.appendChild(el("h3", {}, result.query));
    (result.warnings || []).forEach((w) => box.appendChild(el("p", {class: "warning"}, w)));
    const inVideo = result.pred_in_video;  // calibrated P(moment in video); null for a model without it
    if (inVideo !== undefined && inVideo !== null) {
      const absent = inVideo < IN_VIDEO_THRESHOLD;
      box.appendChild(el("p", {class: absent ? "in-video absent" : "in-video", "data-p": inVideo},
                         (absent ? "probably not in this video" : "in this video") + ` (p = ${inVideo.toFixed(2)})`));
    }
    box.appendChild(el("div", {class: "label"}, "Top windows"));
    box.appendChild(timeline(result, video.duration, player));
    box.appendChild(el("div", {class: "label"}, "Saliency per clip"));
    box.appendChild(saliencyCurve(result.pred_saliency_scores, video.duration, video.clip_len));
    const list = el("ol", {class: "moments"});
    result.pred_relevant_windows.forEach(([s, e, score]) => {
      const item = el("li", {class: "moment", "data-start": s, "data-end": e, "data-score": score},
                      `${fmt(s)} – ${fmt(e)} s  (score ${score.toFixed(3)})`);
      item.addEventListener("click", () => seek(player, s));
      list.appendChild(item);
    });
    box.appendChild(list);
    return box;
  }

  function renderVideo(video) {
    const block = el("article", {class: "video", "data-vid": video.vid});
    block.appendChild(el("h2", {}, `${video.vid} — ${fmt(video.duration)} s`));
    let player = null;
    if (video.video_src) {
      player = el("video", {controls: "", preload: "metadata", src: video.video_src, class: "player"});
      block.appendChild(player);
    }
    if (video.note) block.appendChild(el("p", {class: "note"}, video.note));
    const strip = el("div", {class: "thumbs"});
    (video.thumbnails || []).forEach((th) => {
      const img = el("img", {src: th.src, title: fmt(th.t) + " s", alt: "frame at " + fmt(th.t) + " s"});
      img.addEventListener("click", () => seek(player, th.t));
      strip.appendChild(img);
    });
    block.appendChild(strip);
    video.results.forEach((r) => block.appendChild(renderQuery(r, video, player)));
    return block;
  }

  window.renderGrounding = function (container, videos) {
    container.replaceChildren(...videos.map(renderVideo));
  };
})();
