"""The chunking golden file: texts, settings and the passages both chunkers must cut.

`tests/data/chunking_golden.json` is written by `python -m tests.chunking_golden` from the
default model's `tokenizer.json`; `tests/test_chunking.py` checks the Python chunker against
it (and that writing it again gives the same file), and the Java `xlir_embed` processor reads
the same file. Spans are [start, end) in Unicode code points (Python `str` indices); Java
strings index UTF-16 units, so the Java side converts (the emoji text has non-BMP characters).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from xlir_plugin.chunking import CHUNKING_VERSION, TERMINALS, Chunker, ChunkSettings

GOLDEN = Path(__file__).resolve().parent / "data" / "chunking_golden.json"
SETTINGS = [(32, 0), (64, 0), (32, 8), (64, 8)]

TEXTS: dict[str, str] = {
    "english": (
        "The river rises in the northern hills and flows south for two hundred kilometres. "
        "Along its banks, farmers have grown wheat and barley for centuries! Why did the old "
        "town move? Floods destroyed the lower quarter in 1850; the council rebuilt it on the "
        "plateau. Today the valley is known for its orchards, its wine and its quiet roads. "
        "Visitors come in spring, when the trees are in blossom and the water is high."
    ),
    "german": (
        "Die Stadt liegt am Ufer eines großen Sees und ist seit dem Mittelalter ein wichtiger "
        "Handelsplatz. Im 19. Jahrhundert wurde die Eisenbahn gebaut, wodurch sich die "
        "Einwohnerzahl innerhalb weniger Jahrzehnte verdreifachte. Heute ist sie bekannt für "
        "ihre Universität, ihre Museen und die jährlichen Musikfestspiele im Sommer."
    ),
    "arabic": (
        "تقع المدينة على ضفاف نهر كبير، وكانت مركزًا تجاريًا مهمًا منذ العصور الوسطى. "
        "في القرن التاسع عشر بُنيت السكة الحديدية، فتضاعف عدد السكان ثلاث مرات. "
        "هل تعرف لماذا انتقلت السوق القديمة؟ دمرت الفيضانات الحي السفلي، فأعيد بناؤه على الهضبة؟ "
        "واليوم تشتهر المدينة بجامعتها ومتاحفها."
    ),
    "hindi": (
        "यह शहर एक बड़ी नदी के किनारे बसा है और मध्यकाल से एक महत्वपूर्ण व्यापारिक केंद्र रहा है। "
        "उन्नीसवीं शताब्दी में रेलवे का निर्माण हुआ, जिससे जनसंख्या तीन गुना हो गई। "
        "आज यह शहर अपने विश्वविद्यालय, संग्रहालयों और वार्षिक संगीत समारोह के लिए प्रसिद्ध है।"
    ),
    "chinese": (
        "这座城市位于一条大河的岸边，自中世纪以来一直是重要的贸易中心。十九世纪修建了铁路，"
        "人口在几十年内增加了两倍。老城区曾经被洪水摧毁，议会把它重建在高原上。今天，这座城市"
        "以它的大学、博物馆和每年夏天的音乐节而闻名。春天的时候，果园里开满了花，游客络绎不绝。"
    ),
    "japanese": (
        "この町は大きな川のほとりにあり、中世から重要な交易の中心地でした。十九世紀には鉄道が"
        "建設され、人口は数十年で三倍になりました。旧市街は洪水で破壊されましたが、議会は高台に"
        "町を再建しました。今日、この町は大学と博物館、そして毎年夏の音楽祭で知られています。"
    ),
    "thai": (
        "เมืองนี้ตั้งอยู่ริมแม่น้ำสายใหญ่และเป็นศูนย์กลางการค้าที่สำคัญมาตั้งแต่ยุคกลาง "
        "ในศตวรรษที่สิบเก้ามีการสร้างทางรถไฟ ทำให้จำนวนประชากรเพิ่มขึ้นสามเท่าภายในไม่กี่ทศวรรษ "
        "ปัจจุบันเมืองนี้มีชื่อเสียงในด้านมหาวิทยาลัยพิพิธภัณฑ์และเทศกาลดนตรีประจำปีในฤดูร้อน"
    ),
    "korean": (
        "이 도시는 큰 강가에 자리 잡고 있으며 중세 이래로 중요한 무역 중심지였습니다. 19세기에 "
        "철도가 건설되면서 인구는 수십 년 만에 세 배로 늘었습니다. 오늘날 이 도시는 대학과 "
        "박물관, 그리고 매년 여름에 열리는 음악 축제로 유명합니다."
    ),
    "one_line_no_boundary": "abcdefghij" * 300,
    "newlines_and_markup": (
        "<h1>Title of the page</h1>\n<p>The first paragraph has a sentence without a full "
        "stop</p>\n<p>The second paragraph, also long enough to need more than one passage "
        "when the window is small</p>\n\n<ul><li>item one</li><li>item two</li></ul>\n"
        "Plain text after the markup, with a link <a href='https://example.org/x'>here</a>."
    ),
    "emoji_non_bmp": (
        "Launch day 🚀 went well 🎉🎉 and the team 👩\u200d💻 shipped the release. "
        "Math symbols 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 and 𝒳𝐿𝐼𝑅 sit outside the BMP. 😀😃😄😁😆 "
        "Next week 🗓️ we test again 🧪, then rest 😴."
    ),
    "surrounding_whitespace": (
        "   \n\t  Leading and trailing whitespace around a short text. It has two "
        "sentences.   \n\n  "
    ),
}


def build(tokenizer_file: str | Path) -> dict:
    """The golden file's content for the tokenizer at `tokenizer_file`."""
    cases = []
    for max_tokens, overlap in SETTINGS:
        settings = ChunkSettings(max_tokens, overlap)
        chunker = Chunker(tokenizer_file, settings)
        for name, text in TEXTS.items():
            spans = chunker.spans(text)
            cases.append(
                {
                    "name": name,
                    "max_tokens": max_tokens,
                    "overlap_tokens": overlap,
                    "tokens": len(chunker.token_spans(text)),
                    "passages": [[start, end] for start, end in spans],
                }
            )
    return {
        "about": "chunking golden file: spans are [start, end) in Unicode code points; "
        "regenerate with `python -m tests.chunking_golden`",
        "chunking_version": CHUNKING_VERSION,
        "tokenizer": "the default model's tokenizer.json (multilingual-e5-small, XLM-R)",
        "terminals": TERMINALS,
        "whitespace_code_points": [c for c in range(sys.maxunicode + 1) if chr(c).isspace()],
        "texts": TEXTS,
        "cases": cases,
    }


def dumps(golden: dict) -> str:
    return json.dumps(golden, ensure_ascii=False, indent=1) + "\n"


def default_tokenizer() -> Path:
    from xlir_plugin.default_model import materialize_default

    return materialize_default(progress=False) / "tokenizer.json"


if __name__ == "__main__":
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(dumps(build(default_tokenizer())), encoding="utf-8")
    print(f"wrote {GOLDEN}")
