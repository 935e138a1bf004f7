"""The in-memory multipart parser used for selfies."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI, HTTPException, Request
from fastapi.testclient import TestClient

from api.memory_form import FormError, FormTooLarge, read_form_in_memory

CAP = 200_000


@pytest.fixture
def client() -> Iterator[TestClient]:
    app = FastAPI()

    @app.post("/form")
    async def form(request: Request) -> dict[str, Any]:
        try:
            parsed = await read_form_in_memory(request, max_bytes=CAP, max_parts=5, max_field_bytes=100)
        except FormTooLarge as e:
            raise HTTPException(413, str(e)) from None
        except FormError as e:
            raise HTTPException(422, str(e)) from None
        return {
            "fields": parsed.fields,
            "files": {
                k: [(f.filename, f.content_type, len(f.data), bytes(f.data[:4]).hex()) for f in v]
                for k, v in parsed.files.items()
            },
            "first_code": parsed.first("code"),
            "selfie": parsed.file("selfie") is not None,
        }

    with TestClient(app) as c:
        yield c


def test_fields_and_files_are_parsed_in_order(client: TestClient) -> None:
    data = bytes(range(256)) * 500  # 128 KB, binary
    response = client.post(
        "/form",
        data={"code": ["AB-12", "second"], "token": "t"},
        files={"selfie": ("me.jpg", data, "image/jpeg")},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["fields"] == {"code": ["AB-12", "second"], "token": ["t"]}
    assert body["files"] == {"selfie": [["me.jpg", "image/jpeg", len(data), "00010203"]]}
    assert body["first_code"] == "AB-12" and body["selfie"] is True


def test_a_body_over_the_cap_is_refused_by_length_or_while_streaming(client: TestClient) -> None:
    big = b"x" * (CAP + 1)
    declared = client.post("/form", files={"selfie": ("me.jpg", big, "image/jpeg")})
    assert declared.status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked transfer encoding
        yield b'--b\r\nContent-Disposition: form-data; name="selfie"; filename="a.jpg"\r\n\r\n'
        for _ in range(30):
            yield b"y" * 10_000
        yield b"\r\n--b--\r\n"

    streamed = client.post("/form", content=chunks(), headers={"Content-Type": "multipart/form-data; boundary=b"})
    assert streamed.status_code == 413


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"code=abc", "application/x-www-form-urlencoded"),
        (b"--b\r\nContent-Disposition: form-data\r\n\r\nx\r\n--b--\r\n", "multipart/form-data; boundary=b"),
        (
            b'--b\r\nContent-Disposition: form-data; name="a"\r\n\r\n' + b"z" * 200 + b"\r\n--b--\r\n",
            "multipart/form-data; boundary=b",
        ),
        (
            b"".join(b'--b\r\nContent-Disposition: form-data; name="f%d"\r\n\r\nv\r\n' % i for i in range(6))
            + b"--b--\r\n",
            "multipart/form-data; boundary=b",
        ),
        (b"garbage without boundaries", "multipart/form-data"),
    ],
    ids=["not-multipart", "part-without-name", "field-too-long", "too-many-parts", "no-boundary"],
)
def test_bad_forms_are_refused_with_a_message(client: TestClient, content: bytes, content_type: str) -> None:
    response = client.post("/form", content=content, headers={"Content-Type": content_type})
    assert response.status_code == 422, response.text
    assert response.json()["detail"]
