"""Renders the ClinicMeet app icon (a white medical cross with a speech notch on a
teal rounded square) into every file the Tauri bundler needs. Needs Pillow:
`pip install pillow && python3 icons/generate.py`."""
from pathlib import Path
from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
S = 1024  # master size; smaller files are downscaled (anti-aliased)


def master() -> Image.Image:
    img = Image.new("RGBA", (S, S), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    m = 64
    d.rounded_rectangle((m, m, S - m, S - m), radius=200, fill=(15, 118, 110, 255))  # teal-700
    # A speech bubble (meeting) holding a cross (clinic).
    b = (236, 236, S - 236, S - 300)
    d.rounded_rectangle(b, radius=120, fill=(255, 255, 255, 255))
    d.polygon([(340, S - 310), (340, S - 190), (470, S - 310)], fill=(255, 255, 255, 255))
    cx, cy = S // 2, (b[1] + b[3]) // 2
    arm, half = 150, 52
    teal = (15, 118, 110, 255)
    d.rounded_rectangle((cx - half, cy - arm, cx + half, cy + arm), radius=22, fill=teal)
    d.rounded_rectangle((cx - arm, cy - half, cx + arm, cy + half), radius=22, fill=teal)
    return img


def main() -> None:
    big = master()
    sized = lambda n: big.resize((n, n), Image.LANCZOS)
    sized(32).save(HERE / "32x32.png")
    sized(128).save(HERE / "128x128.png")
    sized(256).save(HERE / "128x128@2x.png")
    sized(512).save(HERE / "icon.png")
    big.save(HERE / "icon.ico", sizes=[(16, 16), (24, 24), (32, 32), (48, 48), (64, 64), (128, 128), (256, 256)])
    big.save(HERE / "icon.icns")
    (HERE / "icon.svg").write_text(SVG)


SVG = """<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 1024 1024">
  <rect x="64" y="64" width="896" height="896" rx="200" fill="#0f766e"/>
  <rect x="236" y="236" width="552" height="488" rx="120" fill="#fff"/>
  <polygon points="340,714 340,834 470,714" fill="#fff"/>
  <rect x="460" y="330" width="104" height="300" rx="22" fill="#0f766e"/>
  <rect x="362" y="428" width="300" height="104" rx="22" fill="#0f766e"/>
</svg>
"""

if __name__ == "__main__":
    main()
