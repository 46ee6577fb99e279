// The referring doctor's one tap on a teaching proposal: agree (optionally naming the hospital) or refuse.
import { api } from "./common.js";

const { id } = JSON.parse(document.getElementById("teaching-data").textContent);
for (const button of document.querySelectorAll("[data-consent]")) {
  button.addEventListener("click", async () => {
    const agree = button.dataset.consent === "true";
    await api(`/api/teaching/${id}/consent`, {
      method: "POST", body: { agree, show_hospital: document.getElementById("show-hospital").checked },
    });
    window.location.reload();
  });
}

// The buttons are wired: tests can wait for this.
document.documentElement.dataset.teaching = "ready";
