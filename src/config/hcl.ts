/**
 * A parser for the subset of HCL2 that hoard and cachew configs use: attributes, blocks with string
 * or bare labels, strings with escapes, heredocs, numbers, booleans, null, lists and objects, and
 * `#`, `//` and `/* *\/` comments. We keep our own parser because the npm HCL parsers either run a
 * WebAssembly Go runtime (slow start-up) or drop source positions, and every config error must
 * name `file:line`. Interpolations (`${VAR}`) are kept verbatim; expansion happens in load.ts.
 */

/** A parsed attribute value. */
export type HclValue = string | number | boolean | null | HclValue[] | { [key: string]: HclValue };

/** A place in the source: 1-based line and column. */
export interface HclPosition {
  line: number;
  column: number;
}

/**
 * Where a value and each of its parts start, shaped like the value: `items` for a list, `entries`
 * (by key) for an object. Lets a validation problem deep inside a value name its exact place.
 */
export interface HclValuePositions extends HclPosition {
  items?: HclValuePositions[];
  entries?: Record<string, HclValuePositions>;
}

/** `name = value`; `line`/`column` are the name's, `valueAt` the value's. */
export interface HclAttribute {
  kind: 'attribute';
  name: string;
  value: HclValue;
  line: number;
  column: number;
  valueAt: HclValuePositions;
}

/** `type "label" ... { body }`; `line`/`column` are the block type's. */
export interface HclBlock {
  kind: 'block';
  type: string;
  labels: string[];
  body: HclBody;
  line: number;
  column: number;
}

/** The contents of a file or block, in source order. */
export interface HclBody {
  items: Array<HclAttribute | HclBlock>;
}

/** A syntax error with its position; the message already reads `file:line:col: …`. */
export class HclSyntaxError extends Error {
  readonly file: string;
  readonly line: number;
  readonly column: number;

  constructor(file: string, line: number, column: number, detail: string) {
    super(`${file}:${line}:${column}: ${detail}`);
    this.name = 'HclSyntaxError';
    this.file = file;
    this.line = line;
    this.column = column;
  }
}

const IDENT_START = /[A-Za-z_]/;
const IDENT_CHAR = /[A-Za-z0-9_-]/;

class Parser {
  private pos = 0;
  private line = 1;
  private lineStart = 0;

  constructor(
    private readonly text: string,
    private readonly file: string,
  ) {}

  parseFile(): HclBody {
    const body = this.parseBody(false);
    this.skipTrivia(true);
    if (this.pos < this.text.length) this.fail(`unexpected ${this.describeNext()}`);
    return body;
  }

  private fail(detail: string): never {
    throw new HclSyntaxError(this.file, this.line, this.pos - this.lineStart + 1, detail);
  }

  private here(): HclPosition {
    return { line: this.line, column: this.pos - this.lineStart + 1 };
  }

  private peek(offset = 0): string {
    return this.text[this.pos + offset] ?? '';
  }

  private advance(): string {
    const ch = this.text[this.pos++] ?? '';
    if (ch === '\n') {
      this.line++;
      this.lineStart = this.pos;
    }
    return ch;
  }

  private describeNext(): string {
    if (this.pos >= this.text.length) return 'end of file';
    const ch = this.peek();
    if (ch === '\n') return 'newline';
    return JSON.stringify(ch);
  }

  /** Skips spaces and comments; newlines too when `newlines` is set. Returns true if a newline was crossed. */
  private skipTrivia(newlines: boolean): boolean {
    let crossed = false;
    for (;;) {
      const ch = this.peek();
      if (ch === ' ' || ch === '\t' || ch === '\r') {
        this.advance();
      } else if (ch === '\n' && newlines) {
        crossed = true;
        this.advance();
      } else if (ch === '#' || (ch === '/' && this.peek(1) === '/')) {
        while (this.pos < this.text.length && this.peek() !== '\n') this.advance();
      } else if (ch === '/' && this.peek(1) === '*') {
        const startLine = this.line;
        this.advance();
        this.advance();
        while (!(this.peek() === '*' && this.peek(1) === '/')) {
          if (this.pos >= this.text.length) {
            this.line = startLine;
            this.fail('unterminated /* comment');
          }
          if (this.peek() === '\n') crossed = true;
          this.advance();
        }
        this.advance();
        this.advance();
      } else {
        return crossed;
      }
    }
  }

  private parseBody(inBlock: boolean): HclBody {
    const items: HclBody['items'] = [];
    for (;;) {
      this.skipTrivia(true);
      const ch = this.peek();
      if (ch === '' || (inBlock && ch === '}')) return { items };
      if (!IDENT_START.test(ch)) this.fail(`expected an attribute or block name, found ${this.describeNext()}`);
      const { line, column } = this.here();
      const name = this.parseIdentifier();
      this.skipTrivia(false);
      if (this.peek() === '=') {
        this.advance();
        this.skipTrivia(false);
        const { value, at } = this.parseExpression();
        items.push({ kind: 'attribute', name, value, line, column, valueAt: at });
      } else {
        const labels: string[] = [];
        while (this.peek() === '"' || IDENT_START.test(this.peek())) {
          labels.push(this.peek() === '"' ? this.parseQuoted() : this.parseIdentifier());
          this.skipTrivia(false);
        }
        if (this.peek() !== '{') this.fail(`expected "=" or "{" after ${JSON.stringify(name)}, found ${this.describeNext()}`);
        this.advance();
        const body = this.parseBody(true);
        if (this.peek() !== '}') this.fail(`unclosed block ${JSON.stringify(name)} opened on line ${line}`);
        this.advance();
        items.push({ kind: 'block', type: name, labels, body, line, column });
      }
      this.endOfItem();
    }
  }

  /** After an attribute or block: a newline, a comment, a closing brace or end of file. */
  private endOfItem(): void {
    const crossed = this.skipTrivia(false);
    const ch = this.peek();
    if (crossed || ch === '\n' || ch === '' || ch === '}') return;
    if (ch === ',' || ch === ';') {
      // One-line blocks such as `cache disk { limit-mb = 10, max-ttl = "1h" }` are common in docs.
      this.advance();
      return;
    }
    this.fail(`expected a newline after the value, found ${this.describeNext()}`);
  }

  private parseIdentifier(): string {
    const start = this.pos;
    while (IDENT_CHAR.test(this.peek())) this.advance();
    return this.text.slice(start, this.pos);
  }

  private parseExpression(): { value: HclValue; at: HclValuePositions } {
    const at: HclValuePositions = this.here();
    const ch = this.peek();
    if (ch === '"') return { value: this.parseQuoted(), at };
    if (ch === '<' && this.peek(1) === '<') return { value: this.parseHeredoc(), at };
    if (ch === '[') return this.parseList(at);
    if (ch === '{') return this.parseObject(at);
    if (ch === '-' || /[0-9]/.test(ch)) return { value: this.parseNumber(), at };
    if (IDENT_START.test(ch)) {
      const word = this.parseIdentifier();
      if (word === 'true') return { value: true, at };
      if (word === 'false') return { value: false, at };
      if (word === 'null') return { value: null, at };
      this.fail(`unsupported expression ${JSON.stringify(word)} (quote strings: "${word}")`);
    }
    this.fail(`expected a value, found ${this.describeNext()}`);
  }

  private parseNumber(): number {
    const match = /-?(\d+)(\.\d+)?([eE][+-]?\d+)?/y;
    match.lastIndex = this.pos;
    const m = match.exec(this.text);
    if (!m) this.fail(`invalid number`);
    for (let i = 0; i < m[0].length; i++) this.advance();
    return Number(m[0]);
  }

  private parseQuoted(): string {
    const startLine = this.line;
    this.advance();
    let out = '';
    for (;;) {
      const ch = this.peek();
      if (ch === '' || ch === '\n') {
        this.line = startLine;
        this.fail('unterminated string');
      }
      this.advance();
      if (ch === '"') return out;
      if (ch === '\\') {
        const esc = this.advance();
        switch (esc) {
          case 'n': out += '\n'; break;
          case 'r': out += '\r'; break;
          case 't': out += '\t'; break;
          case '"': out += '"'; break;
          case '\\': out += '\\'; break;
          case 'u': {
            const hex = this.text.slice(this.pos, this.pos + 4);
            if (!/^[0-9a-fA-F]{4}$/.test(hex)) this.fail('invalid \\u escape');
            for (let i = 0; i < 4; i++) this.advance();
            out += String.fromCharCode(parseInt(hex, 16));
            break;
          }
          default:
            this.fail(`invalid escape \\${esc}`);
        }
      } else if (ch === '$' && this.peek() === '{') {
        // Keep interpolations verbatim (including nested quotes are not supported) for load-time expansion.
        out += '${';
        this.advance();
        while (this.peek() !== '}') {
          if (this.peek() === '' || this.peek() === '\n') this.fail('unterminated ${ interpolation');
          out += this.advance();
        }
        out += this.advance();
      } else {
        out += ch;
      }
    }
  }

  private parseHeredoc(): string {
    this.advance();
    this.advance();
    let indent = false;
    if (this.peek() === '-') {
      indent = true;
      this.advance();
    }
    const marker = this.parseIdentifier();
    if (!marker) this.fail('expected a heredoc marker after <<');
    this.skipTrivia(false);
    if (this.peek() !== '\n') this.fail('expected a newline after the heredoc marker');
    this.advance();
    const startLine = this.line;
    const lines: string[] = [];
    for (;;) {
      if (this.pos >= this.text.length) {
        this.line = startLine;
        this.fail(`unterminated heredoc, expected ${marker}`);
      }
      const end = this.text.indexOf('\n', this.pos);
      const lineText = this.text.slice(this.pos, end === -1 ? this.text.length : end).replace(/\r$/, '');
      if (lineText.trim() === marker) {
        while (this.pos < this.text.length && this.peek() !== '\n') this.advance();
        break;
      }
      lines.push(lineText);
      while (this.pos < this.text.length && this.peek() !== '\n') this.advance();
      if (this.pos < this.text.length) this.advance();
    }
    if (indent) {
      const widths = lines.filter((l) => l.trim() !== '').map((l) => /^[ \t]*/.exec(l)?.[0].length ?? 0);
      const strip = widths.length ? Math.min(...widths) : 0;
      return lines.map((l) => l.slice(strip)).join('\n') + (lines.length ? '\n' : '');
    }
    return lines.join('\n') + (lines.length ? '\n' : '');
  }

  private parseList(at: HclValuePositions): { value: HclValue[]; at: HclValuePositions } {
    this.advance();
    const out: HclValue[] = [];
    at.items = [];
    for (;;) {
      this.skipTrivia(true);
      if (this.peek() === ']') {
        this.advance();
        return { value: out, at };
      }
      const item = this.parseExpression();
      out.push(item.value);
      at.items.push(item.at);
      this.skipTrivia(true);
      if (this.peek() === ',') this.advance();
      else if (this.peek() !== ']') this.fail(`expected "," or "]" in list, found ${this.describeNext()}`);
    }
  }

  private parseObject(at: HclValuePositions): { value: { [key: string]: HclValue }; at: HclValuePositions } {
    this.advance();
    const out: { [key: string]: HclValue } = {};
    const entries: Record<string, HclValuePositions> = {};
    at.entries = entries;
    for (;;) {
      this.skipTrivia(true);
      if (this.peek() === '}') {
        this.advance();
        return { value: out, at };
      }
      const keyAt = this.here();
      let key: string;
      if (this.peek() === '"') key = this.parseQuoted();
      else if (IDENT_START.test(this.peek())) key = this.parseIdentifier();
      else this.fail(`expected an object key, found ${this.describeNext()}`);
      this.skipTrivia(false);
      if (this.peek() !== '=' && this.peek() !== ':') this.fail(`expected "=" or ":" after key ${JSON.stringify(key)}`);
      this.advance();
      this.skipTrivia(true);
      // A repeated key would silently replace the first value: say where both are instead.
      const first = Object.hasOwn(entries, key) ? entries[key] : undefined;
      if (first) throw new HclSyntaxError(this.file, keyAt.line, keyAt.column, `duplicate key ${JSON.stringify(key)} (first set at ${this.file}:${first.line}:${first.column})`);
      const entry = this.parseExpression();
      // defineProperty, not assignment: a key named "__proto__" must stay an ordinary key.
      Object.defineProperty(out, key, { value: entry.value, enumerable: true, writable: true, configurable: true });
      Object.defineProperty(entries, key, { value: entry.at, enumerable: true, writable: true, configurable: true });
      this.skipTrivia(false);
      if (this.peek() === ',') this.advance();
    }
  }
}

/** Parses HCL text; `file` names the source in error messages. Throws HclSyntaxError. */
export function parseHcl(text: string, file = '<config>'): HclBody {
  return new Parser(text, file).parseFile();
}
