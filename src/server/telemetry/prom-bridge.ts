import { ValueType, type Attributes, type HrTime } from '@opentelemetry/api';
import { hrTime, millisToHrTime } from '@opentelemetry/core';
import { AggregationTemporality, DataPointType, type CollectionResult, type DataPoint, type MetricData, type MetricProducer } from '@opentelemetry/sdk-metrics';
import type { Registry } from 'prom-client';
import { emptyResource } from '@opentelemetry/resources';

/**
 * Exports a prom-client registry over OTLP: a MetricProducer that, at every OTLP collection,
 * reads the registry (`getMetricsAsJSON`) and translates what it holds — counters to monotonic
 * cumulative sums, gauges to gauges, histograms to explicit-bucket histograms, summaries to
 * `_sum`/`_count` sums plus a per-quantile gauge. The registry stays the one definition of
 * hoard's metrics (Prometheus scrapes it too); names, help and labels are kept as they are there.
 */

type PromMetric = Awaited<ReturnType<Registry['getMetricsAsJSON']>>[number];
type PromValue = PromMetric['values'][number] & { metricName?: string };

/** Counters in a prom-client registry count from its creation; the process start is as close as it gets. */
const START: HrTime = millisToHrTime(performance.timeOrigin);

function labelsOf(value: PromValue, drop?: string): Attributes {
  const out: Attributes = {};
  for (const [k, v] of Object.entries(value.labels ?? {})) if (k !== drop && v !== undefined) out[k] = v;
  return out;
}

/** A stable identity for a label set (one histogram data point per distinct set). */
function labelKey(labels: Attributes): string {
  return JSON.stringify(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : 1)));
}

function descriptor(name: string, help: string) {
  return { name, description: help, unit: '', valueType: ValueType.DOUBLE };
}

function histogram(metric: PromMetric, end: HrTime): MetricData {
  const series = new Map<string, { attributes: Attributes; buckets: Array<[number, number]>; sum: number; count: number }>();
  const entry = (attributes: Attributes) => {
    const key = labelKey(attributes);
    let s = series.get(key);
    if (!s) series.set(key, (s = { attributes, buckets: [], sum: 0, count: 0 }));
    return s;
  };
  for (const value of metric.values as PromValue[]) {
    if (value.metricName === `${metric.name}_bucket`) {
      const le = value.labels?.['le'];
      if (le !== '+Inf' && le !== undefined) entry(labelsOf(value, 'le')).buckets.push([Number(le), value.value]);
    } else if (value.metricName === `${metric.name}_sum`) entry(labelsOf(value)).sum = value.value;
    else if (value.metricName === `${metric.name}_count`) entry(labelsOf(value)).count = value.value;
  }
  const dataPoints = [...series.values()].map((s) => {
    // prom buckets are cumulative (≤ le); OTLP wants the count of each bucket, plus the overflow.
    const sorted = s.buckets.sort(([a], [b]) => a - b);
    const counts: number[] = [];
    let below = 0;
    for (const [, cumulative] of sorted) {
      counts.push(Math.max(0, cumulative - below));
      below = cumulative;
    }
    counts.push(Math.max(0, s.count - below));
    return { startTime: START, endTime: end, attributes: s.attributes, value: { buckets: { boundaries: sorted.map(([le]) => le), counts }, sum: s.sum, count: s.count } };
  });
  return { descriptor: descriptor(metric.name, metric.help), aggregationTemporality: AggregationTemporality.CUMULATIVE, dataPointType: DataPointType.HISTOGRAM, dataPoints };
}

function points(values: PromValue[], end: HrTime, keep: (v: PromValue) => boolean): DataPoint<number>[] {
  return values.filter(keep).map((v) => ({ startTime: START, endTime: end, attributes: labelsOf(v), value: v.value }));
}

/** Translates one prom-client metric (possibly into several OTLP metrics: a summary's parts). */
export function translate(metric: PromMetric, end: HrTime): MetricData[] {
  const values = metric.values as PromValue[];
  switch (String(metric.type)) {
    case 'counter':
      return [{ descriptor: descriptor(metric.name, metric.help), aggregationTemporality: AggregationTemporality.CUMULATIVE, dataPointType: DataPointType.SUM, isMonotonic: true, dataPoints: points(values, end, () => true) }];
    case 'gauge':
      return [{ descriptor: descriptor(metric.name, metric.help), aggregationTemporality: AggregationTemporality.CUMULATIVE, dataPointType: DataPointType.GAUGE, dataPoints: points(values, end, () => true) }];
    case 'histogram':
      return [histogram(metric, end)];
    case 'summary': {
      const sum = (suffix: string): MetricData => ({
        descriptor: descriptor(`${metric.name}${suffix}`, metric.help),
        aggregationTemporality: AggregationTemporality.CUMULATIVE,
        dataPointType: DataPointType.SUM,
        isMonotonic: true,
        dataPoints: points(values, end, (v) => v.metricName === `${metric.name}${suffix}`),
      });
      const quantiles: MetricData = {
        descriptor: descriptor(metric.name, metric.help),
        aggregationTemporality: AggregationTemporality.CUMULATIVE,
        dataPointType: DataPointType.GAUGE,
        dataPoints: points(values, end, (v) => v.labels?.['quantile'] !== undefined),
      };
      return [quantiles, sum('_sum'), sum('_count')];
    }
    default:
      return [];
  }
}

/** The MetricProducer reading `registry` at every collection. */
export function promRegistryProducer(registry: Registry): MetricProducer {
  return {
    async collect(): Promise<CollectionResult> {
      const errors: unknown[] = [];
      let metrics: PromMetric[] = [];
      try {
        metrics = await registry.getMetricsAsJSON();
      } catch (err) {
        errors.push(err);
      }
      const end = hrTime();
      return {
        // The reader keeps the MeterProvider's resource and takes only the scope metrics from here.
        resourceMetrics: { resource: emptyResource(), scopeMetrics: [{ scope: { name: 'hoard/prom-client' }, metrics: metrics.flatMap((m) => translate(m, end)) }] },
        errors,
      };
    },
  };
}
