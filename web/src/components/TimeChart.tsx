// A small SVG chart of values over time (bars or a line), with its numbers in a table too.
import { useState } from "preact/hooks";

export interface Point {
  time: number; // ms since the epoch
  value: number;
}

export function TimeChart({
  title,
  points,
  unit,
  kind,
  format,
}: {
  title: string;
  points: Point[];
  unit: string;
  kind: "bars" | "line";
  format: (value: number) => string;
}) {
  const [showTable, setShowTable] = useState(false);
  const width = 600;
  const height = 180;
  const pad = { left: 48, right: 8, top: 10, bottom: 26 };
  if (points.length === 0) {
    return (
      <figure class="chart">
        <figcaption>{title}</figcaption>
        <p class="muted">No requests in this range.</p>
      </figure>
    );
  }
  const times = points.map((p) => p.time);
  const t0 = Math.min(...times);
  const t1 = Math.max(...times);
  const span = Math.max(1, t1 - t0);
  const top = Math.max(...points.map((p) => p.value)) || 1;
  const x = (t: number) => pad.left + ((t - t0) / span) * (width - pad.left - pad.right);
  const y = (v: number) => height - pad.bottom - (v / top) * (height - pad.top - pad.bottom);
  const barWidth = Math.max(2, (width - pad.left - pad.right) / Math.max(points.length, 1) - 2);
  const summary = `${title}: ${points.length} point${points.length === 1 ? "" : "s"} from ${new Date(t0).toLocaleString()} to ${new Date(t1).toLocaleString()}, highest ${format(top)}`;
  return (
    <figure class="chart">
      <figcaption>{title}</figcaption>
      <svg viewBox={`0 0 ${width} ${height}`} role="img" aria-label={summary} preserveAspectRatio="none">
        <line
          class="axis"
          x1={pad.left}
          y1={height - pad.bottom}
          x2={width - pad.right}
          y2={height - pad.bottom}
        />
        <line class="axis" x1={pad.left} y1={pad.top} x2={pad.left} y2={height - pad.bottom} />
        <text class="tick" x={pad.left - 4} y={pad.top + 8} text-anchor="end">
          {format(top)}
        </text>
        <text class="tick" x={pad.left - 4} y={height - pad.bottom} text-anchor="end">
          0
        </text>
        <text class="tick" x={pad.left} y={height - 8}>
          {new Date(t0).toLocaleTimeString()}
        </text>
        <text class="tick" x={width - pad.right} y={height - 8} text-anchor="end">
          {new Date(t1).toLocaleTimeString()}
        </text>
        {kind === "bars" ? (
          points.map((p, i) => (
            <rect
              key={i}
              class="bar"
              x={Math.min(
                x(p.time) - barWidth / 2 + (points.length === 1 ? barWidth / 2 : 0),
                width - pad.right - barWidth,
              )}
              y={y(p.value)}
              width={barWidth}
              height={height - pad.bottom - y(p.value)}
            />
          ))
        ) : (
          <>
            <polyline class="line" points={points.map((p) => `${x(p.time)},${y(p.value)}`).join(" ")} />
            {points.map((p, i) => (
              <circle key={i} class="dot" cx={x(p.time)} cy={y(p.value)} r={2.5} />
            ))}
          </>
        )}
      </svg>
      <button type="button" class="link" aria-expanded={showTable} onClick={() => setShowTable(!showTable)}>
        {showTable ? "Hide" : "Show"} the numbers
      </button>
      {showTable ? (
        <table class="compact">
          <thead>
            <tr>
              <th scope="col">time</th>
              <th scope="col">{unit}</th>
            </tr>
          </thead>
          <tbody>
            {points.map((p, i) => (
              <tr key={i}>
                <td>{new Date(p.time).toLocaleString()}</td>
                <td>{format(p.value)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </figure>
  );
}
