// Cosine similarities of sentences as a heat map: a real table (so it reads out loud), with
// each cell's colour from its value and its text dark or light to keep contrast.
import { formatNumber } from "../lib/format";

function cellColours(value: number): { background: string; color: string } {
  // Sentence embeddings rarely point apart: the scale spans 0 … 1, and below 0 reads as 0.
  const t = Math.min(1, Math.max(0, value));
  const lightness = 97 - t * 72; // 97% (pale) … 25% (deep blue)
  return {
    background: `hsl(215 70% ${lightness}%)`,
    color: lightness < 55 ? "#ffffff" : "#111827",
  };
}

export function HeatMap({ labels, matrix }: { labels: string[]; matrix: number[][] }) {
  const short = (text: string) => (text.length > 28 ? `${text.slice(0, 27)}…` : text);
  return (
    <div class="scroll" role="region" aria-label="Similarity heat map" tabIndex={0}>
      <table class="heatmap" data-testid="heatmap">
        <caption>Cosine similarity of each pair of sentences (1 = same direction)</caption>
        <thead>
          <tr>
            <td />
            {labels.map((label, j) => (
              <th scope="col" title={label} key={j}>
                {j + 1}. {short(label)}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {matrix.map((row, i) => (
            <tr key={i}>
              <th scope="row" title={labels[i]}>
                {i + 1}. {short(labels[i] ?? "")}
              </th>
              {row.map((value, j) => (
                <td key={j} style={cellColours(value)} data-row={i} data-col={j} data-value={value}>
                  {formatNumber(value, 3)}
                </td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
