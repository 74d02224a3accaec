/-
Copyright: written for agentrag's tests (Apache-2.0).
theorem not_a_decl_in_header_comment : True := trivial
-/
module

public import Mathlib.Order.Basic

/-!
# Scopes test file

def not_a_decl_in_module_doc := 0
-/

@[expose] public section

universe u v

variable {α : Type u} [Group α]

theorem top_level : True := trivial

namespace Outer

variable (n : ℕ)

theorem in_outer : n = n := rfl

namespace Inner.Deep

/-- Doc for `deep`. -/
def deep : ℕ := 1

end Inner.Deep

section Named

variable {β : Type v}

lemma in_section (b : β) : b = b := rfl

end Named

theorem Qualified.name : True := trivial

theorem _root_.escaped_root : True := trivial

private theorem hidden : True := trivial

protected def prot : ℕ := 2

end Outer

noncomputable section

namespace A.B
namespace C

theorem abc : True := trivial

end C
end A.B

end

set_option linter.unusedVariables false in
theorem after_set_option (x : ℕ) : True := trivial

open Nat in
/-- Documented after `open ... in`. -/
@[simp] theorem after_open : (0 : ℕ) = 0 := rfl

variable (γ : Type) in
def uses_pending : γ → γ := id

def no_pending : ℕ := 0

mutual
  def isEven : ℕ → Bool
    | 0 => true
    | n + 1 => isOdd n
  def isOdd : ℕ → Bool
    | 0 => false
    | n + 1 => isEven n
end

theorem after_mutual : True := trivial

omit [Group α] in
theorem after_omit : True := trivial

include α in
theorem after_include : True := trivial

syntax "fake_syntax" : term
elab "fake_elab" : term => return Lean.mkConst ``True
