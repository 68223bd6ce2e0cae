// Reading S3 request documents (CompleteMultipartUpload, DeleteObjects, ...). They are small
// element trees: no attributes we need (xmlns is ignored), no mixed content, no DTDs. A tree is
// enough, and no XML library is: workerd has no DOMParser.

import { readBounded } from "../../shared/read-bounded.ts";

export interface XmlElement {
  name: string;
  children: XmlElement[];
  text: string;
}

const ENTITIES: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };

/** A character reference's code point, if XML allows it in a document (the Char production). */
function xmlChar(code: number): boolean {
  return code === 0x9 || code === 0xa || code === 0xd || (code >= 0x20 && code <= 0xd7ff) || (code >= 0xe000 && code <= 0xfffd) || (code >= 0x10000 && code <= 0x10ffff);
}

function unescapeXml(s: string, malformed: () => Error): string {
  return s.replace(/&(#x[0-9a-fA-F]{1,8}|#[0-9]{1,10}|amp|lt|gt|quot|apos);|&/g, (whole, e: string | undefined) => {
    // A bare "&" is not well-formed XML, and neither is a reference to a code point outside Char.
    if (e === undefined) throw malformed();
    if (!e.startsWith("#")) return ENTITIES[e]!;
    const code = e.startsWith("#x") ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10);
    if (!xmlChar(code)) throw malformed();
    return String.fromCodePoint(code);
  });
}

/** Parse a request document; throws MalformedXML (as S3) on anything that is not well-formed. */
export function parseXml(text: string, malformed: () => Error): XmlElement {
  let i = 0;
  const skipSpace = () => {
    while (i < text.length && /\s/.test(text[i]!)) i++;
  };
  const skipMisc = () => {
    for (;;) {
      skipSpace();
      if (text.startsWith("<?", i)) {
        const e = text.indexOf("?>", i);
        if (e < 0) throw malformed();
        i = e + 2;
      } else if (text.startsWith("<!--", i)) {
        const e = text.indexOf("-->", i);
        if (e < 0) throw malformed();
        i = e + 3;
      } else return;
    }
  };
  const element = (depth: number): XmlElement => {
    if (depth > 32 || text[i] !== "<") throw malformed();
    const m = /^<([A-Za-z_][\w.:-]*)((?:\s+[\w.:-]+\s*=\s*(?:"[^"]*"|'[^']*'))*)\s*(\/?)>/.exec(text.slice(i, i + 4096));
    if (!m) throw malformed();
    i += m[0].length;
    const el: XmlElement = { name: m[1]!.replace(/^.*:/, ""), children: [], text: "" };
    if (m[3] === "/") return el;
    for (;;) {
      const lt = text.indexOf("<", i);
      if (lt < 0) throw malformed();
      el.text += unescapeXml(text.slice(i, lt), malformed);
      i = lt;
      if (text.startsWith("<!--", i)) {
        const e = text.indexOf("-->", i);
        if (e < 0) throw malformed();
        i = e + 3;
      } else if (text.startsWith("<![CDATA[", i)) {
        const e = text.indexOf("]]>", i);
        if (e < 0) throw malformed();
        el.text += text.slice(i + 9, e);
        i = e + 3;
      } else if (text.startsWith("</", i)) {
        const close = /^<\/([A-Za-z_][\w.:-]*)\s*>/.exec(text.slice(i, i + 1024));
        if (!close || close[1] !== m[1]) throw malformed();
        i += close[0].length;
        return el;
      } else {
        el.children.push(element(depth + 1));
      }
    }
  };
  skipMisc();
  const root = element(0);
  skipMisc();
  if (i !== text.length) throw malformed();
  return root;
}

export function childrenNamed(el: XmlElement, name: string): XmlElement[] {
  return el.children.filter((c) => c.name === name);
}

/** Text of the first child of that name, or null. */
export function childText(el: XmlElement, name: string): string | null {
  const c = el.children.find((x) => x.name === name);
  return c ? c.text : null;
}

/** A request body as text, refusing more than `max` bytes. */
export async function readXmlBody(req: Request, max: number, tooLarge: () => Error): Promise<string> {
  return new TextDecoder().decode(await readBounded(req, max, tooLarge));
}
