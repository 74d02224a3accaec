/- Written for agentrag's tests (Apache-2.0). -/

namespace Kinds

/-- A one-line docstring. -/
theorem one_line_doc : 1 + 1 = 2 := by
  have h : 1 + 1 = 2 := rfl
  show 1 + 1 = 2
  exact h

/--
A docstring
  spanning lines,
with an indented line.
-/
@[simp, to_additive "additive doc"]
lemma multi_doc {G : Type*} [Mul G] (a b : G)
    (h : a = b) :
    a * b = b * a := by
  -- theorem fake_in_proof : True := trivial
  subst h
  rfl

@[simp]
@[norm_cast, to_additive (attr := simp) add_foo "doc with -- and /- markers"]
theorem stacked_attrs : True := trivial

def with_string : String := "theorem fake_in_string : True := trivial -- /-"

/- A block comment /- nested -/ still a comment:
theorem fake_in_nested_comment : True := trivial
-/

def char_lit : Char := '"'

theorem after_char : True := trivial

abbrev MyNat := ℕ

instance instNamed : Inhabited MyNat := ⟨0⟩

instance : Inhabited (List MyNat) := ⟨[]⟩

instance (priority := 100) {α : Type*} [Inhabited α] : Nonempty (Option α) := ⟨none⟩

/-- A point in the plane. -/
structure Point (α : Type*) extends Inhabited α where
  mk' ::
  /-- The first coordinate. -/
  x : α
  y : α := x
deriving Repr

class Shape (α : Type*) where
  area : α → ℕ
  (sides corners : ℕ)
  protected perimeter (s : α) : ℕ := area s

inductive Color where
  /-- Red. -/
  | red
  | green : Color
  | rgb (r g b : ℕ) : Color
  deriving DecidableEq

axiom my_axiom : 0 = 0

opaque secret : ℕ

def matcher : ℕ → ℕ
  | 0 => 1
  | n + 1 => matcher n
termination_by n => n

theorem abs_sig (x : ℤ) :
    |x| = |x| := rfl

def with_where : ℕ := helper + 1
where
  helper : ℕ := 2

example : True := trivial

notation "⟪" x "⟫" => (x : ℕ)

macro "my_tac" : tactic => `(tactic| rfl)

alias one_line_doc_alias := one_line_doc

theorem two_iff : 2 = 2 ↔ True := ⟨fun _ => trivial, fun _ => rfl⟩

alias ⟨mp_alias, _⟩ := two_iff

theorem let_in_type : let k := 1; k = 1 := rfl

end Kinds
