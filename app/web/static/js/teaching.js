// The referring doctor's one tap on a teaching proposal: agree (optionally naming the hospital) or refuse.
import { api } from "./common.js";

const { id } = JSON.parse(document.getElementById("teaching-data").textContent);
const buttons = document.querySelectorAll("[data-consent]");
const errorBox = document.getElementById("consent-error");
for (const button of buttons) {
  button.addEventListener("click", async () => {
    const agree = button.dataset.consent === "true";
    errorBox.textContent = "";
    buttons.forEach((b) => { b.disabled = true; });
    try {
      await api(`/api/teaching/${id}/consent`, {
        method: "POST", body: { agree, show_hospital: document.getElementById("show-hospital").checked },
      });
    } catch (error) {
      errorBox.textContent = error.message;
      buttons.forEach((b) => { b.disabled = false; });
      return;
    }
    window.location.reload();
  });
}

// The buttons are wired: tests can wait for this.
document.documentElement.dataset.teaching = "ready";
