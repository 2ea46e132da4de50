"""The main flow of docs/api.md with ``requests``: a centre and its people, an upload, an
analysis followed to the end, the AI draft, a radiologist's edit and verification.

Run against a server (``just serve``) as its admin:
``HF=http://127.0.0.1:8000 HF_ADMIN_PASSWORD=... python docs/examples/main_flow.py CT_DIR``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import requests

PASSWORD = "a long demo passphrase"


def main(base: str, admin_password: str, folder: Path) -> dict[str, Any]:
    http = requests.Session()

    def call(method: str, path: str, expect: int = 200, **kwargs: Any) -> Any:
        response = http.request(method, f"{base}/api/v1{path}", timeout=60, **kwargs)
        if response.status_code != expect:  # problem documents say what went wrong
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text}")
        return response.json() if response.content else None

    def sign_in(username: str, password: str) -> dict[str, str]:
        token = call("POST", "/auth/token", data={"username": username, "password": password})
        return {"Authorization": f"Bearer {token['access_token']}"}

    admin = sign_in("admin", admin_password)
    suffix = str(int(time.time() * 1000))[-8:]
    centre = call("POST", "/centres", 201, headers=admin, json={"name": f"Clinic {suffix}"})
    people = {}
    for role in ("technician", "radiologist"):
        people[role] = call(
            "POST",
            "/users",
            201,
            headers=admin,
            json={
                "username": f"{role}-{suffix}",
                "email": f"{role}-{suffix}@clinic.example",
                "full_name": f"A {role}",
                "role": role,
                "password": PASSWORD,
                "centre_id": centre["id"],
            },
        )
    technician = sign_in(people["technician"]["username"], PASSWORD)
    radiologist = sign_in(people["radiologist"]["username"], PASSWORD)

    # 1. the technician uploads a series (any number of files in one request)
    files = [("files", (p.name, p.read_bytes(), "application/dicom")) for p in folder.iterdir()]
    upload = call("POST", "/studies", 201, headers=technician, files=files)
    study = upload["studies"][0]

    # 2. the study is assigned to the radiologist; an analysis starts
    call(
        "PATCH",
        f"/studies/{study['id']}/assign",
        headers=admin,
        json={"radiologist_id": people["radiologist"]["id"]},
    )
    job = call(
        "POST",
        "/jobs",
        201,
        headers=technician,
        json={"study_id": study["id"], "model_id": "demo-lesion-unet"},
    )

    # 3. follow it (or subscribe on the /ws/jobs/{id} websocket instead of polling)
    while job["status"] not in {"completed", "failed", "cancelled"}:
        time.sleep(0.5)
        job = call("GET", f"/jobs/{job['id']}", headers=technician)
    result = call("GET", f"/jobs/{job['id']}/result", headers=radiologist)

    # 4. the AI draft; the radiologist edits and verifies it
    draft = call("GET", f"/studies/{study['id']}/ai-report", headers=radiologist)
    edited = call(
        "PATCH",
        f"/reports/{draft['id']}",
        headers=radiologist,
        json={"impression": "Reviewed: " + draft["impression"]},
    )
    verified = call("PATCH", f"/reports/{edited['id']}/verify", headers=radiologist)
    final_study = call("GET", f"/studies/{study['id']}", headers=radiologist)
    return {
        "job_status": job["status"],
        "lesions": len(result["detections"]),
        "report_status": verified["status"],
        "study_status": final_study["status"],
    }


if __name__ == "__main__":
    outcome = main(os.environ["HF"], os.environ["HF_ADMIN_PASSWORD"], Path(sys.argv[1]))
    print(outcome)
