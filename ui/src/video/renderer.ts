// Draws I420 frames on a canvas: WebGL (three LUMINANCE textures + YUV→RGB shader)
// or, when WebGL is unavailable, a 2D canvas with a JS conversion.

import type { VideoFrame } from "../engine/engine";
import { i420ToRgba, splitI420 } from "./convert";

export interface FrameRenderer {
  readonly kind: "webgl" | "2d";
  draw(frame: VideoFrame): void;
  dispose(): void;
}

const VERTEX = `
attribute vec2 a_pos;
varying vec2 v_uv;
void main() {
  v_uv = vec2((a_pos.x + 1.0) * 0.5, (1.0 - a_pos.y) * 0.5);
  gl_Position = vec4(a_pos, 0.0, 1.0);
}`;

// BT.601 limited range, the output of openh264.
const FRAGMENT = `
precision mediump float;
varying vec2 v_uv;
uniform sampler2D u_y;
uniform sampler2D u_u;
uniform sampler2D u_v;
void main() {
  float y = 1.164383 * (texture2D(u_y, v_uv).r - 0.0627451);
  float u = texture2D(u_u, v_uv).r - 0.5019608;
  float v = texture2D(u_v, v_uv).r - 0.5019608;
  gl_FragColor = vec4(y + 1.596027 * v, y - 0.391762 * u - 0.812968 * v, y + 2.017232 * u, 1.0);
}`;

function compile(gl: WebGLRenderingContext, type: number, src: string): WebGLShader {
  const s = gl.createShader(type);
  if (!s) throw new Error("createShader failed");
  gl.shaderSource(s, src);
  gl.compileShader(s);
  if (!gl.getShaderParameter(s, gl.COMPILE_STATUS)) throw new Error(gl.getShaderInfoLog(s) ?? "shader compile failed");
  return s;
}

/** Texture sets per tile (see `WebGlRenderer.textures`). With one set every upload waited
 * for the previous frame's (software) drawing; figures for 1, 2 and 3 in src-tauri/README.md. */
const TEXTURE_SETS = 3;

class WebGlRenderer implements FrameRenderer {
  readonly kind = "webgl" as const;
  /** `TEXTURE_SETS` sets of Y, U, V textures used in turn: uploading into a set the
   * last frames did not use does not wait for their drawing to finish. */
  private textures: WebGLTexture[] = [];
  /** Size each set was allocated with: same size → update in place (texSubImage2D). */
  private allocated = Array.from({ length: TEXTURE_SETS }, () => ({ width: 0, height: 0 }));
  private set = 0;
  private program: WebGLProgram;
  private buffer: WebGLBuffer;

  constructor(
    private readonly canvas: HTMLCanvasElement,
    private readonly gl: WebGLRenderingContext,
  ) {
    const program = gl.createProgram();
    const buffer = gl.createBuffer();
    if (!program || !buffer) throw new Error("WebGL objects unavailable");
    gl.attachShader(program, compile(gl, gl.VERTEX_SHADER, VERTEX));
    gl.attachShader(program, compile(gl, gl.FRAGMENT_SHADER, FRAGMENT));
    gl.linkProgram(program);
    if (!gl.getProgramParameter(program, gl.LINK_STATUS)) throw new Error(gl.getProgramInfoLog(program) ?? "link failed");
    gl.useProgram(program);
    this.program = program;
    this.buffer = buffer;
    gl.bindBuffer(gl.ARRAY_BUFFER, buffer);
    gl.bufferData(gl.ARRAY_BUFFER, new Float32Array([-1, -1, 1, -1, -1, 1, 1, 1]), gl.STATIC_DRAW);
    const loc = gl.getAttribLocation(program, "a_pos");
    gl.enableVertexAttribArray(loc);
    gl.vertexAttribPointer(loc, 2, gl.FLOAT, false, 0, 0);
    gl.pixelStorei(gl.UNPACK_ALIGNMENT, 1);
    ["u_y", "u_u", "u_v"].forEach((name, i) => gl.uniform1i(gl.getUniformLocation(program, name), i));
    for (let k = 0; k < 3 * TEXTURE_SETS; k++) {
      const t = gl.createTexture();
      if (!t) throw new Error("createTexture failed");
      gl.bindTexture(gl.TEXTURE_2D, t);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.LINEAR);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, gl.LINEAR);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_S, gl.CLAMP_TO_EDGE);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_T, gl.CLAMP_TO_EDGE);
      this.textures.push(t);
    }
  }

  draw(frame: VideoFrame): void {
    const { gl, canvas } = this;
    const p = splitI420(frame.width, frame.height, frame.data);
    if (canvas.width !== frame.width || canvas.height !== frame.height) {
      canvas.width = frame.width;
      canvas.height = frame.height;
    }
    gl.viewport(0, 0, frame.width, frame.height);
    const planes: Array<[Uint8Array, number, number]> = [
      [p.y, frame.width, frame.height],
      [p.u, p.chromaWidth, p.chromaHeight],
      [p.v, p.chromaWidth, p.chromaHeight],
    ];
    this.set = (this.set + 1) % TEXTURE_SETS;
    const size = this.allocated[this.set] ?? { width: 0, height: 0 };
    const realloc = size.width !== frame.width || size.height !== frame.height;
    planes.forEach(([data, w, h], i) => {
      gl.activeTexture(gl.TEXTURE0 + i);
      gl.bindTexture(gl.TEXTURE_2D, this.textures[this.set * 3 + i] ?? null);
      if (realloc) gl.texImage2D(gl.TEXTURE_2D, 0, gl.LUMINANCE, w, h, 0, gl.LUMINANCE, gl.UNSIGNED_BYTE, data);
      else gl.texSubImage2D(gl.TEXTURE_2D, 0, 0, 0, w, h, gl.LUMINANCE, gl.UNSIGNED_BYTE, data);
    });
    this.allocated[this.set] = { width: frame.width, height: frame.height };
    gl.drawArrays(gl.TRIANGLE_STRIP, 0, 4);
  }

  dispose(): void {
    for (const t of this.textures) this.gl.deleteTexture(t);
    this.gl.deleteBuffer(this.buffer);
    this.gl.deleteProgram(this.program);
  }
}

class Canvas2dRenderer implements FrameRenderer {
  readonly kind = "2d" as const;
  private image: ImageData | null = null;

  constructor(
    private readonly canvas: HTMLCanvasElement,
    private readonly ctx: CanvasRenderingContext2D,
  ) {}

  draw(frame: VideoFrame): void {
    if (this.canvas.width !== frame.width || this.canvas.height !== frame.height) {
      this.canvas.width = frame.width;
      this.canvas.height = frame.height;
    }
    if (!this.image || this.image.width !== frame.width || this.image.height !== frame.height) {
      this.image = this.ctx.createImageData(frame.width, frame.height);
    }
    i420ToRgba(frame.width, frame.height, frame.data, this.image.data);
    this.ctx.putImageData(this.image, 0, 0);
  }

  dispose(): void {
    this.image = null;
  }
}

/** WebGL when it works, else 2D. `preserveDrawingBuffer` lets tests read tile pixels back. */
export function createRenderer(canvas: HTMLCanvasElement, prefer: "webgl" | "2d" = "webgl"): FrameRenderer | null {
  if (prefer === "webgl") {
    try {
      const gl = canvas.getContext("webgl", { preserveDrawingBuffer: true, antialias: false, alpha: false });
      if (gl) return new WebGlRenderer(canvas, gl);
    } catch {
      // fall through to 2D
    }
  }
  const ctx = canvas.getContext("2d");
  return ctx ? new Canvas2dRenderer(canvas, ctx) : null;
}
